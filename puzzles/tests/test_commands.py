"""The hunt file commands: import_hunt, export_hunt, seed_demo and simulate_hunt."""

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from hunts.models import Hunt, Membership
from puzzles.authoring import dump_hunt, load_hunt_file, parse_hunt_file, parse_pace, simulate
from puzzles.models import Solve

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo.yaml"
BAD = """\
slug: bad
title: NO
starts_at: 2026-12-01T18:00:00Z
ends_at: 2026-12-02T18:00:00Z
"""


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def demo(db) -> Hunt:
    return load_hunt_file(DEMO.read_text(encoding="utf-8"), "demo.yaml")


# --- import_hunt / export_hunt ----------------------------------------------------------------


@pytest.mark.django_db
def test_import_hunt_reports_what_it_imported():
    out, _ = run("import_hunt", str(DEMO))

    assert out == "Imported hunt harbour-lights: 2 rounds, 8 puzzles, 2 treasures\n"
    assert Hunt.objects.get().slug == "harbour-lights"


@pytest.mark.django_db
def test_import_hunt_prints_each_error_and_exits_1_changing_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD.replace("ends_at: 2026-12-02", "ends_at: 2026-11-30"), encoding="utf-8")
    err = io.StringIO()

    with pytest.raises(CommandError) as exc:
        call_command("import_hunt", str(path), stdout=io.StringIO(), stderr=err)

    assert exc.value.returncode == 1
    assert str(exc.value) == f"2 errors in {path}; nothing was imported."
    assert err.getvalue() == (
        f'{path}:2:8: title: expected a string, got boolean false; quote it: "NO"\n'
        f"{path}:4:10: ends_at: must be after starts_at\n"
    )
    assert not Hunt.objects.exists()


def test_manage_py_import_hunt_exits_1_with_the_message_on_stderr(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    # The file is rejected before any database access; the database named here is never created.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "treasurehunt.settings", "REDIS_URL": ""}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.sqlite3'}"

    result = subprocess.run(
        [sys.executable, "manage.py", "import_hunt", "--skip-checks", str(path)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert f'{path}:2:8: title: expected a string, got boolean false; quote it: "NO"\n' in result.stderr
    assert result.stdout == ""


@pytest.mark.django_db
def test_import_hunt_refuses_an_unreadable_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("import_hunt", str(tmp_path / "missing.yaml"))


def test_export_hunt_writes_the_hunt_file_to_stdout(demo):
    out, _ = run("export_hunt", "harbour-lights")

    assert out == dump_hunt(demo)
    assert parse_hunt_file(out, "out.yaml") == parse_hunt_file(DEMO.read_text(encoding="utf-8"), "demo.yaml")


def test_export_hunt_writes_exactly_the_same_bytes_to_a_file(demo, tmp_path):
    path = tmp_path / "out.yaml"

    out, _ = run("export_hunt", "harbour-lights", "-o", str(path))

    assert out == ""
    assert path.read_bytes() == dump_hunt(demo).encode("utf-8")


@pytest.mark.django_db
def test_export_hunt_of_an_unknown_slug_is_an_error():
    with pytest.raises(CommandError, match="No hunt with slug 'nope'"):
        run("export_hunt", "nope")


# --- seed_demo --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_creates_a_running_hunt_with_teams_and_logins():
    out, err = run("seed_demo")

    hunt = Hunt.objects.get(slug="harbour-lights")
    now = timezone.now()
    assert timedelta(seconds=50) < now - hunt.starts_at < timedelta(seconds=70)
    assert abs(hunt.ends_at - (now + timedelta(hours=48))) < timedelta(seconds=10)
    assert hunt.state == Hunt.State.RUNNING
    # Treasure clues keep their distance from the start (3 h in the file).
    assert hunt.treasures.get(slug="spyglass").clue_at == hunt.starts_at + timedelta(hours=3)
    teams = {
        m.user.username: m.team.name
        for m in Membership.objects.filter(hunt=hunt).select_related("user", "team")
    }
    assert teams == {
        "ann": "Lighthouse Keepers",
        "bob": "Lighthouse Keepers",
        "cat": "Deep Divers",
        "dan": "Deep Divers",
    }
    users = get_user_model().objects
    assert users.get(username="ann").check_password("demo-ann-1234")
    staff = users.get(username="staff")
    assert staff.is_staff and staff.is_superuser and staff.check_password("demo-staff-1234")
    assert "  ann    demo-ann-1234    Lighthouse Keepers\n" in out
    assert "  staff  demo-staff-1234" in out
    assert "http://127.0.0.1:8000/" in out
    assert err == ""


@pytest.mark.django_db
def test_seed_demo_twice_leaves_the_hunt_and_its_progress_alone():
    run("seed_demo")
    hunt = Hunt.objects.get()
    ann = Membership.objects.get(user__username="ann")
    solve = Solve.objects.create(team=ann.team, puzzle=hunt.puzzles.get(slug="chalkboard"), points=10)

    out, _ = run("seed_demo")

    assert "already exists" in out
    assert Hunt.objects.get().pk == hunt.pk
    assert Solve.objects.filter(pk=solve.pk).exists()
    assert Membership.objects.get(user__username="ann").team_id == ann.team_id
    assert hunt.teams.count() == 2


@pytest.mark.django_db
def test_seed_demo_reset_recreates_the_hunt_from_scratch():
    run("seed_demo")
    old = Hunt.objects.get()
    Solve.objects.create(
        team=Membership.objects.get(user__username="ann").team, puzzle=old.puzzles.get(slug="chalkboard")
    )

    out, _ = run("seed_demo", "--reset")

    hunt = Hunt.objects.get()
    assert hunt.pk != old.pk
    assert "Imported hunt harbour-lights" in out
    assert not Solve.objects.exists()
    assert Membership.objects.filter(hunt=hunt).count() == 4


# --- simulate_hunt ----------------------------------------------------------------------------

DEMO_TIMELINE = """\
The Harbour Lights Mystery: one team solving a puzzle every 20m
+00:00  hunt.started     The Harbour Lights Mystery
+00:00  puzzle.unlocked  chalkboard (The Fishmonger's Chalkboard)
+00:00  puzzle.unlocked  harbourmaster (The Harbourmaster's Log)
+00:00  puzzle.unlocked  moorings (Wrong Berths)
+00:00  puzzle.unlocked  postcard (A Postcard on the Door)
+00:15  hint.free        harbourmaster hint 1
+00:20  puzzle.solved    chalkboard (The Fishmonger's Chalkboard)
+00:20  hint.free        chalkboard hint 1
+00:20  hint.free        moorings hint 1
+00:20  hint.free        postcard hint 1
+00:30  puzzle.unlocked  fog-signal (The Fog Signal)
+00:30  hint.free        fog-signal hint 1
+00:40  puzzle.solved    harbourmaster (The Harbourmaster's Log)
+00:40  puzzle.unlocked  morse (Flashes in the Night)
+00:45  hint.free        fog-signal hint 2
+00:50  hint.free        morse hint 1
+01:00  puzzle.solved    moorings (Wrong Berths)
+01:20  puzzle.solved    postcard (A Postcard on the Door)
+01:40  puzzle.solved    morse (Flashes in the Night)
+01:40  puzzle.unlocked  bookshelf (The Keeper's Bookshelf)
+01:40  puzzle.unlocked  where-is-maud (Where Is Maud?)
+01:40  hint.free        where-is-maud hint 1
+01:55  hint.free        bookshelf hint 1
+02:00  puzzle.solved    fog-signal (The Fog Signal)
+02:00  treasure.found   spyglass (The Keeper's Spyglass)
+02:10  hint.free        where-is-maud hint 2
+02:20  puzzle.solved    bookshelf (The Keeper's Bookshelf)
+02:40  puzzle.solved    where-is-maud (Where Is Maud?)
+03:00  treasure.clue    spyglass (The Keeper's Spyglass)
+48:00  hunt.ended       The Harbour Lights Mystery
"""


def test_simulate_hunt_prints_the_demo_timeline(demo):
    out, _ = run("simulate_hunt", "harbour-lights", "--solve-every", "20m")

    assert out == DEMO_TIMELINE


def test_simulate_hunt_names_puzzles_that_never_open_at_a_slow_pace(demo):
    out, _ = run("simulate_hunt", "harbour-lights", "--solve-every", "13h")

    assert "+26:00  puzzle.unlocked  morse (Flashes in the Night)\n" in out
    assert out.endswith("Never unlocked at this pace: bookshelf, where-is-maud\n")


@pytest.mark.parametrize("pace", ["20", "0m", "5d", "m"])
def test_simulate_hunt_refuses_a_pace_without_a_unit(demo, pace):
    with pytest.raises(CommandError, match="--solve-every"):
        run("simulate_hunt", "harbour-lights", "--solve-every", pace)


RULES = """\
slug: rules
title: Rules
starts_at: 2026-12-01T18:00:00Z
ends_at: 2026-12-01T22:00:00Z
rounds:
  - title: A
    puzzles:
      - {slug: a1, title: A1, answers: [{kind: exact, value: X}]}
      - {slug: a2, title: A2, answers: [{kind: exact, value: X}]}
  - title: B
    puzzles:
      - {slug: timed, title: T, unlock: {after_minutes: 90}, answers: [{kind: exact, value: X}]}
      - {slug: mixed, title: M, unlock: {after_minutes: 5, solves: 1}, answers: [{kind: exact, value: X}]}
      - {slug: all, title: All, unlock: {prerequisites: [a1, a2]}, answers: [{kind: exact, value: X}]}
      - {slug: own, title: Own, unlock: {round_solves: 1}, answers: [{kind: exact, value: X}]}
"""


def test_simulation_applies_every_unlock_condition_and_waits_for_timed_unlocks():
    entries = simulate(parse_hunt_file(RULES, "rules.yaml"), solve_every=timedelta(minutes=10))

    unlocked = {e.slug: e.at for e in entries if e.kind == "puzzle.unlocked"}
    solved = [(e.slug, e.at) for e in entries if e.kind == "puzzle.solved"]
    minutes = timedelta(minutes=1)
    # after_minutes and solves together: the later of the two moments (first solve at 10).
    assert unlocked["mixed"] == 10 * minutes
    # prerequisites without `needed`: all of them.
    assert unlocked["all"] == 20 * minutes
    # round_solves counts this round only: the first B solve (mixed, at 30).
    assert unlocked["own"] == 30 * minutes
    assert unlocked["timed"] == 90 * minutes
    # With nothing open after 60 min the team waits for the timed puzzle, opened at 90.
    assert solved == [
        ("a1", 10 * minutes),
        ("a2", 20 * minutes),
        ("mixed", 30 * minutes),
        ("all", 40 * minutes),
        ("own", 50 * minutes),
        ("timed", 100 * minutes),
    ]
    assert entries[-1].kind == "hunt.ended" and entries[-1].at == 4 * 60 * minutes


def test_simulation_stops_at_the_end_of_the_hunt():
    entries = simulate(parse_hunt_file(RULES, "rules.yaml"), solve_every=timedelta(hours=2))

    assert [e.slug for e in entries if e.kind == "puzzle.solved"] == ["a1"]
    assert all(e.at < timedelta(hours=4) for e in entries[:-1])


def test_pace_accepts_seconds_minutes_and_hours():
    assert [parse_pace(p) for p in ("90s", "20m", "2h")] == [
        timedelta(seconds=90),
        timedelta(minutes=20),
        timedelta(hours=2),
    ]
