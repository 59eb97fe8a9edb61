"""manage.py simulate_hunt SLUG --solve-every 20m: when puzzles, hints and treasure clues open."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hunts.models import Hunt
from puzzles.authoring import format_timeline, hunt_to_spec, parse_pace, simulate


class Command(BaseCommand):
    help = (
        "Print the timeline of a team that solves one open puzzle at a steady pace from the hunt's "
        "start: unlocks, free hints, treasure clues and treasures found by solving."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The hunt's slug.")
        parser.add_argument(
            "--solve-every",
            default="20m",
            metavar="DURATION",
            help="Time per puzzle, e.g. 90s, 20m, 1h (default 20m).",
        )

    def handle(self, *args, slug: str, solve_every: str, **options) -> None:
        try:
            pace = parse_pace(solve_every)
        except ValueError as exc:
            raise CommandError(f"--solve-every: {exc}") from exc
        hunt = Hunt.objects.filter(slug=slug).first()
        if hunt is None:
            raise CommandError(f"No hunt with slug '{slug}'.")
        spec = hunt_to_spec(hunt)
        entries = simulate(spec, solve_every=pace)
        self.stdout.write(f"{spec.title}: one team solving a puzzle every {solve_every.strip()}")
        for line in format_timeline(entries):
            self.stdout.write(line)
        unlocked = {e.slug for e in entries if e.kind == "puzzle.unlocked"}
        never = [p.slug for p in spec.puzzles() if p.slug not in unlocked]
        if never:
            self.stdout.write(f"Never unlocked at this pace: {', '.join(never)}")
