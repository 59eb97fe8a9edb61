"""manage.py import_hunt FILE: create or update a hunt from a hunt file (DESIGN section 8b)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from puzzles.authoring import HuntFileError, load_hunt_file


class Command(BaseCommand):
    help = "Create or update a hunt from a YAML hunt file; on any error, change nothing and exit 1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path of the hunt file (YAML).")

    def handle(self, *args, file: str, **options) -> None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            hunt = load_hunt_file(text, file)
        except HuntFileError as exc:
            for message in exc.messages:
                self.stderr.write(message)
            count = len(exc.messages)
            raise CommandError(
                f"{count} error{'s' if count != 1 else ''} in {file}; nothing was imported."
            ) from None
        self.stdout.write(
            f"Imported hunt {hunt.slug}: {hunt.rounds.count()} rounds, {hunt.puzzles.count()} puzzles, "
            f"{hunt.treasures.count()} treasures"
        )
