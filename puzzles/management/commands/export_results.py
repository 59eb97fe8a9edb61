"""manage.py export_results SLUG --what results|solves|finds|guesses --format csv|json [-o FILE]."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hunts.models import Hunt
from puzzles import exports


class Command(BaseCommand):
    help = "Export a hunt's results, solves, treasure finds or guesses as CSV or JSON, to stdout or a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The hunt's slug.")
        parser.add_argument("--what", choices=exports.WHATS, default="results", help="Default: results.")
        parser.add_argument("--format", choices=exports.FORMATS, default="csv", help="Default: csv.")
        parser.add_argument("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")

    def handle(self, *args, slug: str, what: str, format: str, output: str | None, **options) -> None:
        hunt = Hunt.objects.filter(slug=slug).first()
        if hunt is None:
            raise CommandError(f"No hunt with slug '{slug}'.")
        chunks = exports.stream(exports.table(hunt, what), format)
        if output is None:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            return
        try:
            # newline="": CSV rows end in \n on every platform, as written.
            with open(output, "w", encoding="utf-8", newline="") as out:
                for chunk in chunks:
                    out.write(chunk)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc}") from exc
        self.stderr.write(f"Exported the {what} of hunt {slug} to {output}")
