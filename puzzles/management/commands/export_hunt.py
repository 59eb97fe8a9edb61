"""manage.py export_hunt SLUG [-o FILE]: write a hunt as a hunt file (DESIGN section 8b)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hunts.models import Hunt
from puzzles.authoring import dump_hunt


class Command(BaseCommand):
    help = "Write a hunt as a YAML hunt file, to stdout or to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The hunt's slug.")
        parser.add_argument("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")

    def handle(self, *args, slug: str, output: str | None, **options) -> None:
        hunt = Hunt.objects.filter(slug=slug).first()
        if hunt is None:
            raise CommandError(f"No hunt with slug '{slug}'.")
        text = dump_hunt(hunt)
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            # newline="": the file holds exactly the exported bytes on every platform.
            Path(output).write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc}") from exc
        self.stderr.write(f"Exported hunt {slug} to {output}")
