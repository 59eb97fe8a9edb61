"""The event log: gap-free seq numbers per stream, pushes after commit only, replay and heads."""

import asyncio
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from hunts import events as hunt_events
from hunts.events import EventLog, LoopPublisher, head_key, record_heads, replay
from hunts.models import Event, Hunt, Team
from hunts.services import create_team, join_team, leave_team, lock_hunt, lock_team, post_announcement
from puzzles.normalize import exact_key
from puzzles.services import claim_treasure, claim_treasure_by_code, release_due, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory()


@pytest.fixture
def pushed(monkeypatch):
    frames = []
    monkeypatch.setattr(hunt_events, "send_frames", frames.extend)
    return frames


def seqs(**stream):
    return list(Event.objects.filter(**stream).order_by("seq").values_list("seq", flat=True))


def test_team_stream_counts_from_one_without_gaps_across_services(factories, hunt):
    ann, bob = factories.UserFactory(), factories.UserFactory()
    puzzle = factories.PuzzleFactory(hunt=hunt)
    factories.AnswerFactory(puzzle=puzzle)
    factories.PuzzleFactory(hunt=hunt, has_rules=True, unlock_solves=1)
    factories.TreasureFactory(hunt=hunt, code="COIN", code_key=exact_key("COIN"))
    team = create_team(hunt=hunt, user=ann, name="Sea Dogs")
    join_team(hunt=hunt, user=bob, join_code=team.join_code)
    submit_guess(team=team, user=ann, puzzle_slug=puzzle.slug, text="wrong")
    submit_guess(team=team, user=ann, puzzle_slug=puzzle.slug, text="answer")
    claim_treasure_by_code(team=team, code="coin")
    leave_team(hunt=hunt, user=bob)

    kinds = list(Event.objects.filter(team=team).order_by("seq").values_list("kind", flat=True))
    assert kinds == [
        "member.joined",
        "member.joined",
        "guess.judged",
        "guess.judged",
        "puzzle.solved",
        "puzzle.unlocked",
        "treasure.found",
        "member.left",
    ]
    assert seqs(team=team) == list(range(1, 9))
    assert Team.objects.get(pk=team.pk).event_seq == 8


def test_hunt_stream_counts_from_one_without_gaps(factories):
    hunt = factories.HuntFactory(starts_at=timezone.now() + timedelta(hours=1))
    team = factories.MembershipFactory(team__hunt=hunt).team
    release_due(hunt=hunt, now=hunt.starts_at)
    post_announcement(hunt=hunt, text="Welcome")
    claim_treasure(team=team, treasure=factories.TreasureFactory(hunt=hunt))
    post_announcement(hunt=hunt, text="Bye")

    assert seqs(hunt=hunt, team__isnull=True) == [1, 2, 3, 4]
    assert seqs(team=team) == [1]
    assert Hunt.objects.get(pk=hunt.pk).event_seq == 4


def test_streams_of_different_teams_and_hunts_count_separately(factories, hunt):
    first = factories.MembershipFactory(team__hunt=hunt).team
    second = factories.MembershipFactory(team__hunt=hunt).team
    other_hunt = factories.HuntFactory()
    for target in (first, second, first):
        claim_treasure(team=target, treasure=factories.TreasureFactory(hunt=hunt))
    post_announcement(hunt=other_hunt, text="Elsewhere")

    assert seqs(team=first) == [1, 2]
    assert seqs(team=second) == [1]
    assert seqs(hunt=hunt, team__isnull=True) == [1, 2, 3]
    assert seqs(hunt=other_hunt, team__isnull=True) == [1]


def test_events_are_pushed_only_after_commit(django_capture_on_commit_callbacks, hunt, pushed):
    with django_capture_on_commit_callbacks(execute=True):
        post_announcement(hunt=hunt, text="Hello")
        assert pushed == []

    [(group, frame)] = pushed
    event = Event.objects.get()
    assert group == f"hunt.{hunt.pk}"
    assert frame == {
        "type": "announcement.posted",
        "stream": "hunt",
        "seq": 1,
        "at": hunt_events.iso(event.created_at),
        "data": {"id": event.data["id"], "text": "Hello"},
    }


def test_rolled_back_events_are_neither_stored_nor_pushed(django_capture_on_commit_callbacks, hunt, pushed):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        post_announcement(hunt=hunt, text="Oops")
        raise RuntimeError

    assert pushed == [] and not Event.objects.exists()
    assert Hunt.objects.get(pk=hunt.pk).event_seq == 0


def test_staff_frames_carry_the_team(django_capture_on_commit_callbacks, factories, hunt, pushed):
    team = factories.MembershipFactory(team__hunt=hunt, team__name="Sea Dogs", team__slug="sea-dogs").team

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        log = EventLog(hunt)
        log.team(lock_team(team.pk), "score.adjusted", {"points": 5, "reason": "bonus"}, staff=True)
        log.flush()

    assert [group for group, _ in pushed] == [f"team.{team.pk}", f"staff.{hunt.pk}"]
    assert pushed[1][1]["stream"] == "staff"
    assert pushed[1][1]["team"] == {"slug": "sea-dogs", "name": "Sea Dogs"}


def test_saved_team_fields_are_written_with_the_head(factories, hunt):
    team = factories.MembershipFactory(team__hunt=hunt).team

    with transaction.atomic():
        locked = lock_team(team.pk)
        log = EventLog(hunt)
        locked.score = 42
        log.save_team(locked, "score")
        log.team(locked, "score.adjusted", {"points": 42, "reason": "test"})
        log.flush()

    team.refresh_from_db()
    assert (team.score, team.event_seq) == (42, 1)


def test_flushing_an_empty_log_writes_nothing(django_assert_num_queries, hunt):
    with django_assert_num_queries(0):
        assert EventLog(hunt).flush() == []


def test_publish_records_heads_in_the_cache(django_capture_on_commit_callbacks, factories, hunt, pushed):
    team = factories.MembershipFactory(team__hunt=hunt).team

    with django_capture_on_commit_callbacks(execute=True):
        claim_treasure(team=team, treasure=factories.TreasureFactory(hunt=hunt))
        post_announcement(hunt=hunt, text="Hi")

    assert cache.get(head_key("team", team.pk)) == 1
    assert cache.get(head_key("hunt", hunt.pk)) == 2


def test_cached_heads_only_rise():
    assert record_heads({"seq:team:1": 5}) == {"seq:team:1": 5}
    # It gives back the heads as cached after it: the higher of the cached and the given.
    assert record_heads({"seq:team:1": 3, "seq:hunt:1": 2}) == {"seq:team:1": 5, "seq:hunt:1": 2}

    assert cache.get_many(["seq:team:1", "seq:hunt:1"]) == {"seq:team:1": 5, "seq:hunt:1": 2}
    assert record_heads({}) == {}


def test_heads_the_cache_cannot_record_come_back_as_none(monkeypatch, caplog):
    def down(*args, **kwargs):
        raise ConnectionError("the cache is gone")

    monkeypatch.setattr(cache, "get_many", down)
    assert record_heads({"seq:team:1": 5}) is None
    assert "could not record event heads" in caplog.text


def test_replay_returns_one_stream_after_a_seq_in_order(factories, hunt):
    team = factories.MembershipFactory(team__hunt=hunt).team
    for n in range(4):
        post_announcement(hunt=hunt, text=f"a{n}")
    claim_treasure(team=team, treasure=factories.TreasureFactory(hunt=hunt))

    frames = replay(hunt=hunt, team=team, stream="hunt", after=2)
    assert [(f["seq"], f["type"]) for f in frames] == [
        (3, "announcement.posted"),
        (4, "announcement.posted"),
        (5, "treasure.claimed"),
    ]
    assert [f["type"] for f in replay(hunt=hunt, team=team, stream="team", after=0)] == ["treasure.found"]
    assert len(replay(hunt=hunt, team=team, stream="hunt", after=0, limit=2)) == 2


def test_hunt_lock_returns_the_current_head(hunt):
    post_announcement(hunt=hunt, text="one")

    assert hunt.event_seq == 0
    assert lock_hunt(hunt.pk).event_seq == 1


async def test_the_loop_publisher_sends_what_waits_in_one_call_in_order():
    """Batches handed over while one is being sent go together, in order (one pipeline on Redis)."""
    calls = []
    release = asyncio.Event()

    class Layer:
        async def group_send_many(self, messages):
            calls.append([message["text"] for _, message in messages])
            await release.wait()

    layer = Layer()
    publisher = LoopPublisher(asyncio.get_running_loop())
    publisher.submit(layer, [("team.1", {"type": "a", "n": 1})])
    await asyncio.sleep(0.01)  # the first batch is being sent
    for n in (2, 3, 4):
        publisher.submit(layer, [("team.1", {"type": "a", "n": n}), ("staff.1", {"type": "b", "n": n})])
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.sleep(0.01)
    assert [[json.loads(text)["n"] for text in call] for call in calls] == [[1], [2, 2, 3, 3, 4, 4]]
    assert publisher.task is None and not publisher.batches


async def test_the_loop_publisher_sends_only_the_last_waiting_whole_state_frame_of_each_kind_and_group():
    """A presence frame carries the team's whole list, a leaderboard.updated the whole top 10: of those
    waiting together, the last of each kind and group goes, where it stood; every other frame goes in
    order (fix 57)."""
    calls = []
    release = asyncio.Event()

    class Layer:
        async def group_send_many(self, messages):
            calls.append([(group, json.loads(message["text"])) for group, message in messages])
            await release.wait()

    def presence(*names):
        return {"type": "presence", "online": list(names)}

    layer = Layer()
    publisher = LoopPublisher(asyncio.get_running_loop())
    publisher.submit(layer, [("team.1", presence("ann"))])
    await asyncio.sleep(0.01)  # the first batch is being sent: the rest wait together
    publisher.submit(layer, [("team.1", presence("ann", "bob"))])
    publisher.submit(layer, [("team.1", {"type": "guess.judged", "seq": 1})])
    publisher.submit(layer, [("team.2", presence("cat"))])
    publisher.submit(layer, [("hunt.1", {"type": "leaderboard.updated", "top": [1]})])
    publisher.submit(layer, [("team.1", presence("ann", "bob", "dan")), ("hunt.1", {"type": "a"})])
    publisher.submit(layer, [("hunt.1", {"type": "leaderboard.updated", "top": [2]})])
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.sleep(0.01)

    assert calls == [
        [("team.1", presence("ann"))],
        [
            ("team.1", {"type": "guess.judged", "seq": 1}),
            ("team.2", presence("cat")),
            ("team.1", presence("ann", "bob", "dan")),
            ("hunt.1", {"type": "a"}),
            ("hunt.1", {"type": "leaderboard.updated", "top": [2]}),
        ],
    ]
