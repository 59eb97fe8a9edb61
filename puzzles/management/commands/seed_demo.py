"""manage.py seed_demo [--reset]: the bundled demo hunt, running now, with demo players and a staff login."""

import dataclasses
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from hunts.models import Hunt, Membership, Team
from hunts.services import create_team, join_team
from puzzles.authoring import HuntFileError, parse_hunt_file, save_hunt_spec

DEMO_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "demo.yaml"
TEAMS = {"Lighthouse Keepers": ("ann", "bob"), "Deep Divers": ("cat", "dan")}
STAFF = "staff"
SITE_URL = "http://127.0.0.1:8000/"
RUNS_FOR = timedelta(hours=48)


def demo_password(username: str) -> str:
    return f"demo-{username}-1234"


class Command(BaseCommand):
    help = (
        "Import the bundled demo hunt shifted to start a minute ago and end in 48 hours, with demo "
        "players in two teams and a staff account. An existing demo hunt is left alone unless --reset."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete the demo hunt and all its progress, then recreate it.",
        )

    def handle(self, *args, reset: bool, **options) -> None:
        try:
            spec = parse_hunt_file(DEMO_FILE.read_text(encoding="utf-8"), str(DEMO_FILE))
        except HuntFileError as exc:
            raise CommandError("The bundled demo hunt is invalid:\n" + "\n".join(exc.messages)) from None
        now = timezone.now().replace(microsecond=0)
        with transaction.atomic():
            hunt = Hunt.objects.filter(slug=spec.slug).first()
            if hunt is not None and reset:
                hunt.delete()
                hunt = None
            if hunt is None:
                # Clues keep their distance from the start; the end is pinned at 48 h from now.
                start = now - timedelta(minutes=1)
                spec = dataclasses.replace(spec.shifted(start - spec.starts_at), ends_at=now + RUNS_FOR)
                hunt = save_hunt_spec(spec)
                self.stdout.write(
                    f"Imported hunt {hunt.slug}: {hunt.rounds.count()} rounds, {hunt.puzzles.count()} "
                    f"puzzles, {hunt.treasures.count()} treasures; "
                    f"running until {hunt.ends_at:%Y-%m-%d %H:%M} UTC"
                )
            else:
                self.stdout.write(
                    f"Demo hunt {hunt.slug} already exists: left as it is (--reset starts over)."
                )
            users = {name: self._user(name, staff=False) for names in TEAMS.values() for name in names}
            users[STAFF] = self._user(STAFF, staff=True)
            for team_name, members in TEAMS.items():
                self._team(hunt, team_name, [users[name] for name in members])

        self.stdout.write("\nDemo logins (username / password):")
        for team_name, members in TEAMS.items():
            for name in members:
                self.stdout.write(f"  {name:<6} {demo_password(name):<16} {team_name}")
        self.stdout.write(f"  {STAFF:<6} {demo_password(STAFF):<16} staff and admin ({SITE_URL}admin/)")
        self.stdout.write(f"\nOpen {SITE_URL}")

    def _user(self, username: str, *, staff: bool) -> AbstractBaseUser:
        """The demo account, with its demo password (re)set so the printed logins work."""
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.set_password(demo_password(username))
        if staff:
            user.is_staff = user.is_superuser = True
        user.save()
        return user

    def _team(self, hunt: Hunt, name: str, members: list[AbstractBaseUser]) -> None:
        """Put each member who has no team in this hunt on team `name`, creating it if needed."""
        team = Team.objects.filter(hunt=hunt, name__iexact=name).first()
        for user in members:
            if Membership.objects.filter(hunt=hunt, user=user).exists():
                continue
            try:
                if team is None:
                    team = create_team(hunt=hunt, user=user, name=name)
                else:
                    join_team(hunt=hunt, user=user, join_code=team.join_code)
            except (ValidationError, PermissionDenied) as exc:
                reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                self.stderr.write(f"Could not put {user.get_username()} on {name}: {reason}")
