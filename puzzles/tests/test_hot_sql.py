"""The guess path's reads are written out in SQL (puzzles/services.py, _hot_sql): each must return what the
queryset it mirrors returns. Runs on SQLite in the fast tier and on PostgreSQL in the integration tier.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from hunts.errors import NotFound, RateLimited
from puzzles import services
from puzzles.models import Guess, Puzzle, Solve, Treasure, Unlock
from testing import factories

CASES = [
    "free",
    "free-relocked",
    "ruled-open",
    "ruled-closed",
    "ruled-relocked",
    "solved",
    "elsewhere",
    "unknown",
]


def build_world():
    now = timezone.now()
    hunt = factories.HuntFactory(starts_at=now - timedelta(hours=1))
    team = factories.MembershipFactory(team__hunt=hunt).team
    other = factories.MembershipFactory(team__hunt=hunt).team
    puzzles = {
        slug: factories.PuzzleFactory(hunt=hunt, slug=slug, has_rules=slug.startswith("ruled"))
        for slug in ("free", "free-relocked", "ruled-open", "ruled-closed", "ruled-relocked", "solved")
    }
    factories.PuzzleFactory(slug="elsewhere")  # another hunt's puzzle
    Unlock.objects.create(team=team, puzzle=puzzles["free-relocked"], locked=True)
    Unlock.objects.create(team=team, puzzle=puzzles["ruled-open"])
    Unlock.objects.create(team=team, puzzle=puzzles["ruled-relocked"], locked=True)
    Unlock.objects.create(team=other, puzzle=puzzles["ruled-closed"])  # the other team's row
    Solve.objects.create(team=team, puzzle=puzzles["solved"], solved_at=now, points=10)
    Solve.objects.create(team=other, puzzle=puzzles["free"], solved_at=now, points=10)
    factories.TreasureFactory(hunt=hunt).requires.add(puzzles["free"])  # auto-claimed
    coded = factories.TreasureFactory(hunt=hunt)
    Treasure.objects.filter(pk=coded.pk).update(code_key="x7")  # claimed by its code
    coded.requires.add(puzzles["ruled-open"])
    return hunt, team, puzzles


def check_unlocked_puzzle_matches_unlocked_for():
    hunt, team, _ = build_world()
    for now in (timezone.now(), hunt.starts_at - timedelta(minutes=1)):
        for slug in CASES:
            expected = Puzzle.objects.unlocked_for(team, now=now).filter(slug=slug).first()
            try:
                found = services.unlocked_puzzle(team=team, slug=slug, now=now)
            except NotFound:
                found = None
            assert (found and found.pk) == (expected and expected.pk), (slug, now)
            if found:
                assert bool(found.solved) == Solve.objects.filter(team=team, puzzle=found).exists(), slug
                claim = Treasure.objects.filter(requires=found, code_key="").exists()
                assert found.may_claim == claim == (slug == "free"), slug
                assert found.may_unlock == Puzzle.objects.filter(hunt=hunt, has_rules=True).exists(), slug


def check_a_hunt_without_rules_or_auto_treasures_skips_both():
    now = timezone.now()
    hunt = factories.HuntFactory(starts_at=now - timedelta(hours=1))
    team = factories.MembershipFactory(team__hunt=hunt).team
    factories.PuzzleFactory(hunt=hunt, slug="plain", has_rules=False)
    found = services.unlocked_puzzle(team=team, slug="plain", now=now)
    assert (found.may_claim, found.may_unlock) == (False, False)


def check_seen_and_recent_guesses_match_their_querysets():
    hunt, team, puzzles = build_world()
    puzzle, now = puzzles["free"], timezone.now()
    for n, (key, client_id) in enumerate([("a", "c1"), ("b", None), ("c", "c3"), ("d", None)]):
        Guess.objects.create(
            team=team,
            puzzle=puzzle,
            text=key,
            key=key,
            client_id=client_id,
            created_at=now - timedelta(minutes=n),
        )
    Guess.objects.create(
        team=team, puzzle=puzzles["solved"], text="a", key="a", client_id="c9", created_at=now
    )
    for key, client_id in [("a", None), ("a", "c3"), ("z", "c9"), ("z", None), ("b", "nope")]:
        by_key = Guess.objects.filter(team=team, puzzle=puzzle, key=key).first()
        by_client = Guess.objects.filter(team=team, client_id=client_id).first() if client_id else None
        for all_exact in (True, False):
            puzzle.all_exact = all_exact
            puzzle.save()
            keys = (key, "nothing") if all_exact else ("nothing", key)
            found = services._puzzle_for_guess(
                team=team, slug="free", now=now, keys=keys, client_id=client_id
            )
            assert found.seen_by_key == (by_key and by_key.pk), (key, all_exact)
            assert found.seen_by_client == (by_client and by_client.pk), client_id
    since = now - timedelta(minutes=2, seconds=30)
    for n in (1, 2, 3, 4):
        expected = list(
            Guess.objects.filter(team=team, puzzle=puzzle, created_at__gt=since)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[n - 1 : n]
        )
        found = services._puzzle_for_guess(team=team, slug="free", now=now, limit=(since, n))
        assert found.nth_at == (expected[0] if expected else None), n
    assert services._puzzle_for_guess(team=team, slug="free", now=now).nth_at is None


def check_the_guessing_team_lock_reads_team_and_hunt():
    hunt, team, _ = build_world()
    member = team.memberships.get().user
    stranger = factories.UserFactory()
    found = services._lock_guessing_team(team, member)
    assert (found.pk, found.name, found.event_seq, found.score) == (
        team.pk,
        team.name,
        team.event_seq,
        team.score,
    )
    assert (found.hunt.pk, found.hunt.starts_at, found.hunt.guess_limit) == (
        hunt.pk,
        hunt.starts_at,
        hunt.guess_limit,
    )
    assert services._lock_guessing_team(team, None).pk == team.pk
    with pytest.raises(NotFound):
        services._lock_guessing_team(team, stranger)


def check_answers_come_in_authoring_order():
    puzzle = factories.PuzzleFactory()
    for order, value in [(2, "C"), (0, "A"), (1, "B"), (1, "B2")]:
        factories.AnswerFactory(puzzle=puzzle, order=order, parameters={"value": value})
    factories.AnswerFactory(parameters={"value": "other puzzle"})
    answers = services._answers(puzzle)
    assert [a.pk for a in answers] == list(
        puzzle.answers.order_by("order", "id").values_list("pk", flat=True)
    )
    assert [a.parameters["value"] for a in answers] == ["A", "B", "B2", "C"]


def check_the_puzzle_brings_its_answers_in_authoring_order():
    hunt, team, puzzles = build_world()
    puzzle = puzzles["free"]
    for order, final, kind, parameters in [
        (2, True, "exact", {"value": "C"}),
        (0, False, "numeric", {"value": 4.5, "tolerance": 0.1}),
        (1, True, "set", {"values": ["x", "y"]}),
        (1, False, "regex", {"pattern": "^b+$"}),
    ]:
        factories.AnswerFactory(
            puzzle=puzzle, order=order, final=final, kind=kind, parameters=parameters, response=f"r{order}"
        )
    factories.AnswerFactory(puzzle=puzzles["ruled-open"], parameters={"value": "other puzzle"})
    found = services._puzzle_for_guess(team=team, slug="free", now=timezone.now()).answer_list
    fields = ["pk", "puzzle_id", "kind", "parameters", "final", "response", "order"]
    expected = list(puzzle.answers.order_by("order", "id"))
    assert [[getattr(a, f) for f in fields] for a in found] == [
        [getattr(a, f) for f in fields] for a in expected
    ]
    assert all(type(a.final) is bool for a in found)
    assert services._puzzle_for_guess(team=team, slug="ruled-open", now=timezone.now()).answer_list[
        0
    ].parameters == {"value": "other puzzle"}
    assert services._puzzle_for_guess(team=team, slug="solved", now=timezone.now()).answer_list == []


@pytest.mark.django_db
def test_the_puzzle_brings_its_answers_in_authoring_order():
    check_the_puzzle_brings_its_answers_in_authoring_order()


@pytest.mark.django_db
def test_unlocked_puzzle_matches_unlocked_for():
    check_unlocked_puzzle_matches_unlocked_for()


@pytest.mark.django_db
def test_a_hunt_without_rules_or_auto_treasures_skips_both():
    check_a_hunt_without_rules_or_auto_treasures_skips_both()


@pytest.mark.django_db
def test_seen_and_recent_guesses_match_their_querysets():
    check_seen_and_recent_guesses_match_their_querysets()


@pytest.mark.django_db
def test_answers_come_in_authoring_order():
    check_answers_come_in_authoring_order()


@pytest.mark.django_db
def test_the_guessing_team_lock_reads_team_and_hunt():
    check_the_guessing_team_lock_reads_team_and_hunt()


@pytest.mark.integration
@pytest.mark.django_db
def test_the_written_out_sql_matches_its_querysets_on_postgresql():
    check_unlocked_puzzle_matches_unlocked_for()
    check_a_hunt_without_rules_or_auto_treasures_skips_both()
    check_seen_and_recent_guesses_match_their_querysets()
    check_answers_come_in_authoring_order()
    check_the_puzzle_brings_its_answers_in_authoring_order()
    check_the_guessing_team_lock_reads_team_and_hunt()


@pytest.mark.parametrize("returning", [True, False])
@pytest.mark.django_db
def test_insert_sets_the_ids_with_or_without_returning(monkeypatch, returning):
    """Many rows in one INSERT where the database returns their ids, else one INSERT per row."""
    from django.db import connection

    from hunts.models import Event
    from treasurehunt import hotsql

    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", returning)
    team = factories.MembershipFactory().team
    events = [Event(hunt_id=team.hunt_id, team=team, seq=n, kind="k", data={"n": n}) for n in (1, 2, 3)]
    hotsql.insert(events)
    assert all(e.pk is not None and not e._state.adding for e in events)
    stored = {e.pk: (e.seq, e.data) for e in Event.objects.filter(team=team)}
    assert stored == {e.pk: (e.seq, {"n": e.seq}) for e in events}


def check_insert_writes_rows_with_the_ids_they_carry_in_one_statement():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hunts.models import Event
    from treasurehunt import hotsql

    team = factories.MembershipFactory().team
    first = Event(hunt_id=team.hunt_id, team=team, seq=1, kind="k", data={})
    hotsql.insert([first])
    events = [
        Event(id=first.pk + n, hunt_id=team.hunt_id, team=team, seq=n + 1, kind="k", data={"n": n})
        for n in (5, 9)
    ]
    with CaptureQueriesContext(connection) as queries:
        hotsql.insert(events)
    assert len(queries) == 1
    assert [e.pk for e in events] == [first.pk + 5, first.pk + 9] and not any(e._state.adding for e in events)
    assert {e.pk: e.data for e in Event.objects.filter(team=team)} == {
        first.pk: {},
        first.pk + 5: {"n": 5},
        first.pk + 9: {"n": 9},
    }
    with pytest.raises(ValueError):
        hotsql.insert(
            [
                Event(id=first.pk + 20, hunt_id=team.hunt_id, team=team, seq=20, kind="k", data={}),
                Event(hunt_id=team.hunt_id, team=team, seq=21, kind="k", data={}),
            ]
        )


@pytest.mark.django_db
def test_insert_writes_rows_with_the_ids_they_carry():
    check_insert_writes_rows_with_the_ids_they_carry_in_one_statement()


@pytest.mark.integration
@pytest.mark.django_db
def test_insert_writes_rows_with_the_ids_they_carry_on_postgresql():
    check_insert_writes_rows_with_the_ids_they_carry_in_one_statement()


def check_insert_and_update_writes_rows_and_heads_in_one_statement_where_it_can():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hunts.models import Event
    from treasurehunt import hotsql

    team = factories.MembershipFactory().team
    hunt = team.hunt
    team.event_seq, team.score, hunt.event_seq = 2, 7, 1
    events = [
        Event(hunt_id=hunt.pk, team=team, seq=1, kind="k", data={"n": 1}),
        Event(hunt_id=hunt.pk, team=team, seq=2, kind="k", data={"n": 2}),
        Event(hunt_id=hunt.pk, team=None, seq=1, kind="h", data={}),
    ]
    with CaptureQueriesContext(connection) as queries:
        hotsql.insert_and_update(events, [(team, ["event_seq", "score"]), (hunt, ["event_seq"])])
    assert len(queries) == (1 if connection.vendor == "postgresql" else 3)
    assert all(e.pk is not None and not e._state.adding for e in events)
    stored = {e.pk: (e.team_id, e.seq, e.data) for e in Event.objects.filter(hunt=hunt)}
    assert stored == {e.pk: (e.team_id, e.seq, e.data) for e in events}
    team.refresh_from_db()
    hunt.refresh_from_db()
    assert (team.event_seq, team.score, hunt.event_seq) == (2, 7, 1)
    with CaptureQueriesContext(connection) as queries:
        hotsql.insert_and_update([], [(team, ["score"])])  # updates alone
    assert len(queries) == 1


@pytest.mark.django_db
def test_insert_and_update_writes_rows_and_heads():
    check_insert_and_update_writes_rows_and_heads_in_one_statement_where_it_can()


@pytest.mark.integration
@pytest.mark.django_db
def test_insert_and_update_is_one_statement_on_postgresql():
    check_insert_and_update_writes_rows_and_heads_in_one_statement_where_it_can()


def test_json_rows_come_back_in_the_order_asked_whatever_order_the_database_gave():
    from puzzles.models import Answer
    from treasurehunt import hotsql

    def row(pk, order):
        return [pk, 1, "exact", {"value": str(pk)}, 1, "", order]  # laid out as hotsql.columns(Answer)

    assert [f.name for f in hotsql.fields(Answer)] == [
        "id",
        "puzzle",
        "kind",
        "parameters",
        "final",
        "response",
        "order",
    ]
    found = hotsql.from_json_rows(Answer, [row(9, 1), row(3, 2), row(5, 0), row(4, 1)], ("order", "id"))
    assert [(a.order, a.pk) for a in found] == [(0, 5), (1, 4), (1, 9), (2, 3)]
    assert all(a.final is True for a in found)  # SQLite's 1
    assert hotsql.from_json_rows(Answer, None, ("order", "id")) == []


def _next_guess_id() -> int:
    """An id for a guess written with its pk: from the sequence where there is one, else above every id."""
    from django.db import connection
    from django.db.models import Max

    from treasurehunt import hotsql

    taken = hotsql.next_id(Guess)
    if taken is None:
        return (Guess.objects.aggregate(top=Max("pk"))["top"] or 0) + 100
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {taken}")
        return cursor.fetchone()[0]


def check_rows_with_their_ids_go_first_in_the_same_statement_where_it_can():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hunts.models import Event
    from treasurehunt import hotsql

    team = factories.MembershipFactory().team
    puzzle = factories.PuzzleFactory(hunt=team.hunt)
    guess_id = _next_guess_id()
    guess = Guess(id=guess_id, team=team, puzzle=puzzle, text="x", key="x", status="incorrect")
    team.event_seq = 1
    event = Event(
        hunt_id=team.hunt_id, team=team, seq=1, kind="guess.judged", data={"guess": {"id": guess_id}}
    )
    with CaptureQueriesContext(connection) as queries:
        hotsql.insert_and_update([event], [(team, ["event_seq"])], rows=[guess])
    assert len(queries) == (1 if connection.vendor == "postgresql" else 3)
    assert guess.pk == guess_id and not guess._state.adding
    stored = Guess.objects.get(pk=guess_id)
    assert (stored.team_id, stored.puzzle_id, stored.text, stored.created_at) == (
        team.pk,
        puzzle.pk,
        "x",
        guess.created_at,
    )
    assert Event.objects.get(pk=event.pk).data == {"guess": {"id": guess_id}}
    team.refresh_from_db()
    assert team.event_seq == 1


@pytest.mark.django_db
def test_rows_with_their_ids_are_written_before_the_events():
    check_rows_with_their_ids_go_first_in_the_same_statement_where_it_can()


@pytest.mark.integration
@pytest.mark.django_db
def test_rows_with_their_ids_share_the_events_statement_on_postgresql():
    check_rows_with_their_ids_go_first_in_the_same_statement_where_it_can()


def check_a_guess_meeting_a_unique_key_is_a_conflict_and_leaves_nothing(monkeypatch):
    """What a duplicate that got past the repeat checks does, wherever the guess's INSERT goes."""
    from django.db import transaction

    from hunts.errors import Conflict
    from hunts.models import Event

    hunt, team, puzzles = build_world()
    user = team.memberships.first().user
    services.submit_guess(team=team, user=user, puzzle_slug="ruled-open", text="wrong", client_id="c-1")
    real = services._puzzle_for_guess

    def blind(**kwargs):
        found = real(**kwargs)
        found.seen_by_client = None  # as if the first guess were not there yet
        return found

    monkeypatch.setattr(services, "_puzzle_for_guess", blind)
    events_before = Event.objects.count()
    with pytest.raises(Conflict), transaction.atomic():
        services.submit_guess(team=team, user=user, puzzle_slug="ruled-open", text="other", client_id="c-1")
    assert Guess.objects.filter(team=team).count() == 1
    assert Event.objects.count() == events_before


@pytest.mark.django_db
def test_a_guess_meeting_a_unique_key_is_a_conflict(monkeypatch):
    check_a_guess_meeting_a_unique_key_is_a_conflict_and_leaves_nothing(monkeypatch)


@pytest.mark.integration
@pytest.mark.django_db
def test_a_guess_meeting_a_unique_key_is_a_conflict_on_postgresql(monkeypatch):
    check_a_guess_meeting_a_unique_key_is_a_conflict_and_leaves_nothing(monkeypatch)


@pytest.mark.integration
@pytest.mark.django_db
def test_a_wrong_guess_is_three_statements_on_postgresql():
    """The team's lock (and the guess's id), the puzzle, then the guess with its event and the team's head."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hunt, team, puzzles = build_world()
    user = team.memberships.first().user
    with CaptureQueriesContext(connection) as queries:
        guess, created = services.submit_guess(
            team=team, user=user, puzzle_slug="ruled-open", text="wrong", client_id="c-1"
        )
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert len(statements) == 3, statements
    assert "nextval" in statements[0] and statements[2].startswith('WITH i0 AS (INSERT INTO "puzzles_guess"')
    assert created and Guess.objects.get(pk=guess.pk).text == "wrong"


def check_another_tables_integrity_error_is_not_a_conflict():
    """Only the guess table's unique keys mean "just submitted"; an event's seq taken twice (a broken lock)
    stays an IntegrityError, logged as the bug it is."""
    from django.db import IntegrityError, transaction

    from hunts.errors import Conflict
    from hunts.models import Event

    hunt, team, puzzles = build_world()
    user = team.memberships.first().user
    Event.objects.create(hunt=hunt, team=team, seq=team.event_seq + 1, kind="x", data={})  # the next seq
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        services.submit_guess(team=team, user=user, puzzle_slug="ruled-open", text="wrong", client_id="c-1")
    assert not isinstance(raised.value, Conflict)
    assert not Guess.objects.filter(team=team).exists()


@pytest.mark.django_db
def test_another_tables_integrity_error_is_not_a_conflict():
    check_another_tables_integrity_error_is_not_a_conflict()


@pytest.mark.integration
@pytest.mark.django_db
def test_another_tables_integrity_error_is_not_a_conflict_on_postgresql():
    check_another_tables_integrity_error_is_not_a_conflict()


def synchronous_commit() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("waits", [False, True])
def test_a_guess_commits_without_waiting_for_the_disk_unless_set_to(settings, waits):
    """The guess's own transaction runs with synchronous_commit off (set in the lock's statement, no round
    trip of its own); the connection's next transaction is back to the server's default."""
    from django.db import transaction

    settings.GUESS_SYNCHRONOUS_COMMIT = waits
    hunt, team, puzzles = build_world()
    user = team.memberships.first().user
    with transaction.atomic():
        assert synchronous_commit() == "on"
        services.submit_guess(team=team, user=user, puzzle_slug="ruled-open", text="wrong", client_id="c-1")
        inside = synchronous_commit()
    assert inside == ("on" if waits else "off")
    assert synchronous_commit() == "on"  # SET LOCAL: this transaction only
    assert Guess.objects.get(client_id="c-1").status == Guess.Status.INCORRECT


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_guess_judged_by_the_worker_commits_without_waiting_for_the_disk(settings):
    from django.db import transaction

    from puzzles.models import Answer

    settings.GUESS_SYNCHRONOUS_COMMIT = False
    hunt, team, puzzles = build_world()
    user = team.memberships.first().user
    puzzle = puzzles["free"]
    Puzzle.objects.filter(pk=puzzle.pk).update(all_exact=False)
    factories.AnswerFactory(
        puzzle=puzzle, kind=Answer.Kind.GEO, parameters={"lat": 48.8584, "lng": 2.2945, "radius_m": 150}
    )
    guess, _ = services.submit_guess(team=team, user=user, puzzle_slug="free", text="48.8584, 2.2945")
    assert guess.status == Guess.Status.PENDING
    with transaction.atomic():
        judged = services.judge_guess(guess_id=guess.pk)
        inside = synchronous_commit()
    assert inside == "off" and synchronous_commit() == "on"
    assert judged.status == Guess.Status.CORRECT


def plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child)


@pytest.mark.integration
@pytest.mark.django_db
def test_the_puzzle_is_found_by_its_slug_before_its_unlock_rule_is_tested_on_postgresql(monkeypatch):
    """With many puzzles and no unlock rows yet (a hunt's start), PostgreSQL planned the flattened statement
    to test the unlock rule's subqueries on every puzzle of the hunt; the puzzle's own subquery keeps them
    to the one puzzle found by its slug."""
    from django.db import connection

    now = timezone.now()
    hunt = factories.HuntFactory(starts_at=now - timedelta(hours=1))
    team = factories.MembershipFactory(team__hunt=hunt).team
    for n in range(120):
        factories.PuzzleFactory(hunt=hunt, slug=f"p{n}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    calls = []
    real = services.hotsql.fetch_one

    def recording(sql, params):
        calls.append((sql, params))
        return real(sql, params)

    monkeypatch.setattr(services.hotsql, "fetch_one", recording)
    user = team.memberships.first().user
    services.submit_guess(team=team, user=user, puzzle_slug="p77", text="wrong", client_id="c-1")
    sql, params = next((sql, params) for sql, params in calls if "puzzles_unlock" in sql)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"]
    unlock_scans = [n for n in plan_nodes(plan) if n.get("Relation Name") == "puzzles_unlock"]
    assert unlock_scans and all(n["Actual Loops"] <= 1 for n in unlock_scans), unlock_scans


@pytest.mark.integration
@pytest.mark.django_db
def test_a_guess_plans_with_the_indexes_whatever_the_statistics_say_on_postgresql():
    """The guess's first statement turns sequential scans off for its transaction (hotsql.INDEXES_FIRST), so
    its prepared statements keep index plans made while the guess table was nearly empty (fix 48)."""
    from django.db import connection, transaction

    hunt, team, puzzles = build_world()
    user = team.memberships.first().user
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_seqscan")
        assert cursor.fetchone() == ("on",)
        cursor.execute("ANALYZE puzzles_guess")  # statistics of a nearly empty table, as at a hunt's start
    # Enough guesses for the statements to be prepared and their plans made on those statistics ...
    for n in range(8):
        services.submit_guess(team=team, user=user, puzzle_slug="ruled-open", text=f"w{n}", client_id=f"c{n}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_seqscan")
        assert cursor.fetchone() == ("off",)  # for the rest of the guess's transaction
    # ... then the table grows by thousands before the next ANALYZE.
    Guess.objects.bulk_create(
        Guess(team=team, puzzle=puzzles["free"], user=user, text=f"x{n}", key=f"x{n}", status="incorrect")
        for n in range(3000)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_numscans('puzzles_guess'::regclass)")
        (scans_before,) = cursor.fetchone()
        services.submit_guess(team=team, user=user, puzzle_slug="ruled-open", text="other", client_id="c-x")
        cursor.execute("SELECT pg_stat_get_xact_numscans('puzzles_guess'::regclass)")
        assert cursor.fetchone() == (scans_before,)  # its repeat and limit reads used the indexes


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_refused_guess_keeps_the_connections_prepared_statements_on_postgresql():
    """A guess refused in steps 1-7 ends its transaction with COMMIT: at a ROLLBACK psycopg forgets every
    prepared statement of the connection and deallocates them on the server, and the next guesses would
    plan the guess path's statements again (fix 50). Not nested in a test transaction: the real COMMIT."""
    from django.core.exceptions import ValidationError
    from django.db import connection

    hunt, team, puzzles = build_world()
    user = team.memberships.first().user
    hunt.guess_limit_guesses, hunt.guess_limit_minutes = 3, 10
    hunt.save()

    def prepared() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_prepared_statements")
            return {name for (name,) in cursor.fetchall()}

    for n in range(3):  # prepared from the second time on (prepare_threshold)
        services.submit_guess(team=team, user=user, puzzle_slug="ruled-open", text=f"w{n}", client_id=f"c{n}")
    before = prepared()
    assert len(before) >= 3  # the lock, the puzzle, the guess with its events

    refusals = [
        (ValidationError, "solved", "late"),  # step 6: already solved
        (RateLimited, "ruled-open", "w3"),  # step 7: the limit of 3 in 10 minutes
        (NotFound, "ruled-closed", "x"),  # step 2: not open for the team
        (ValidationError, "ruled-open", "   "),  # step 3: no answer
    ]
    for error, slug, text in refusals:
        with pytest.raises(error):
            services.submit_guess(team=team, user=user, puzzle_slug=slug, text=text)
        assert not connection.in_atomic_block
        assert prepared() >= before, (slug, text)  # none forgotten
    assert Guess.objects.filter(team=team).count() == 3  # and nothing written


def check_the_hot_statements_cursor():
    """On PostgreSQL the statements of the hot paths share the pooled connection's own psycopg cursor
    (fix 56), elsewhere each has its own, closed after it; either way Django's wrapper is around it, so
    captured queries, execute wrappers and translated errors stay as connection.cursor() gives them."""
    from django.db import IntegrityError, connection, transaction
    from django.test.utils import CaptureQueriesContext

    from treasurehunt import hotsql

    with hotsql.cursor() as first:
        first.execute("SELECT 1")
    with hotsql.cursor() as second:
        second.execute("SELECT 2")
        assert second.fetchone() == (2,)
    if connection.vendor == "postgresql":
        assert first.cursor is second.cursor and not second.cursor.closed
    else:
        assert first.cursor is not second.cursor
    with CaptureQueriesContext(connection) as queries:
        assert hotsql.fetch_one("SELECT %s", [3]) == (3,)
        assert hotsql.fetch_all("SELECT %s UNION ALL SELECT %s", [4, 5]) == [(4,), (5,)]
    assert [q["sql"] for q in queries] == ["SELECT 3", "SELECT 4 UNION ALL SELECT 5"]
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        hotsql.fetch_one("SELECT 6", [])
    assert seen == ["SELECT 6"]
    team = factories.TeamFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        hotsql.fetch_one(f"INSERT INTO {hotsql.table(type(team))} (id) VALUES (%s) RETURNING id", [team.pk])


@pytest.mark.django_db
def test_the_hot_statements_cursor():
    check_the_hot_statements_cursor()


@pytest.mark.integration
@pytest.mark.django_db
def test_the_hot_statements_share_the_pooled_connections_cursor_on_postgresql():
    check_the_hot_statements_cursor()
