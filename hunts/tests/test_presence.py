"""Presence (hunts/presence.py): lists sent on change only, team checks once per TTL per process, repairs.

Each runs in both tiers: on LocMemCache (Django's cache API) and on Redis (the Lua script).
"""

import pytest
from django.core.cache import cache

from hunts import presence
from treasurehunt.cache import redis_cache

TEAM, OTHER_TEAM = 1, 2


@pytest.fixture(autouse=True, params=["locmem", pytest.param("redis", marks=pytest.mark.integration)])
def tier_cache(request, fresh_presence):
    """Each rule on the tier's cache: LocMemCache in the fast tier, Redis (the Lua script) in integration."""
    assert (redis_cache() is not None) == (request.param == "redis")
    return request.param


@pytest.fixture
def checks(monkeypatch):
    """The team ids of every full check (join, leave, repair, periodic), whichever cache runs it."""
    calls = []
    real = presence._check

    def counting(team_id, **kwargs):
        calls.append(team_id)
        return real(team_id, **kwargs)

    monkeypatch.setattr(presence, "_check", counting)
    return calls


def time_passes(team_id: int = TEAM) -> None:
    """PRESENCE_TTL seconds pass for this process's check of the team."""
    presence._checked_at[team_id] -= presence.PRESENCE_TTL


def test_the_list_goes_to_the_team_only_when_it_changes(presence_sent):
    assert presence.join(team_id=TEAM, conn="ann-1", username="ann").online is None
    assert presence.join(team_id=TEAM, conn="bob-1", username="bob").online is None
    # A second tab changes nothing: its list is for that socket alone.
    assert presence.join(team_id=TEAM, conn="bob-2", username="bob").online == ["ann", "bob"]
    presence.leave(team_id=TEAM, conn="bob-2")
    presence.leave(team_id=TEAM, conn="bob-1")

    assert presence_sent == [(TEAM, ["ann"]), (TEAM, ["ann", "bob"]), (TEAM, ["ann"])]


def test_teams_have_separate_lists(presence_sent):
    presence.join(team_id=TEAM, conn="ann-1", username="ann")
    presence.join(team_id=OTHER_TEAM, conn="cat-1", username="cat")
    presence.leave(team_id=OTHER_TEAM, conn="cat-1")

    assert presence_sent == [(TEAM, ["ann"]), (OTHER_TEAM, ["cat"]), (OTHER_TEAM, [])]


def test_a_ping_checks_the_team_once_per_ttl_per_process_not_once_per_socket(presence_sent, checks):
    presence.join(team_id=TEAM, conn="ann-1", username="ann")
    presence.join(team_id=TEAM, conn="bob-1", username="bob")
    presence.join(team_id=OTHER_TEAM, conn="cat-1", username="cat")
    checks.clear()

    for conn, name in [("ann-1", "ann"), ("bob-1", "bob")]:
        presence.refresh(team_id=TEAM, conn=conn, username=name)
    assert checks == []  # the joins checked the team just now
    time_passes()
    for conn, name in [("ann-1", "ann"), ("bob-1", "bob"), ("ann-1", "ann")]:
        presence.refresh(team_id=TEAM, conn=conn, username=name)
    presence.refresh(team_id=OTHER_TEAM, conn="cat-1", username="cat")

    assert checks == [TEAM]


def test_a_socket_lost_without_a_leave_drops_off_at_the_teams_next_check(presence_sent):
    presence.join(team_id=TEAM, conn="ann-1", username="ann")
    presence.join(team_id=TEAM, conn="bob-1", username="bob")
    # bob's socket was on a process that died: it never leaves, and its key expires.
    presence._local[TEAM].pop("bob-1")
    cache.delete(presence.conn_key("bob-1"))
    presence_sent.clear()

    presence.refresh(team_id=TEAM, conn="ann-1", username="ann")
    assert presence_sent == []  # not due yet
    time_passes()
    presence.refresh(team_id=TEAM, conn="ann-1", username="ann")

    assert presence_sent == [(TEAM, ["ann"])]


def test_a_flushed_cache_is_repaired_by_each_sockets_next_ping(presence_sent):
    presence.join(team_id=TEAM, conn="ann-1", username="ann")
    presence.join(team_id=TEAM, conn="bob-1", username="bob")
    presence_sent.clear()
    cache.clear()

    presence.refresh(team_id=TEAM, conn="ann-1", username="ann")
    presence.refresh(team_id=TEAM, conn="bob-1", username="bob")

    assert presence_sent == [(TEAM, ["ann"]), (TEAM, ["ann", "bob"])]
    assert presence.join(team_id=TEAM, conn="ann-2", username="ann").online == ["ann", "bob"]


def test_the_teams_check_re_adds_this_processs_sockets_missing_from_the_index(presence_sent):
    presence.join(team_id=TEAM, conn="ann-1", username="ann")
    presence.join(team_id=TEAM, conn="bob-1", username="bob")
    # bob's index entry is lost (evicted) while his socket and his key live: his pings see nothing wrong.
    presence.leave(team_id=TEAM, conn="bob-1")
    presence._local[TEAM]["bob-1"] = "bob"
    cache.set(presence.conn_key("bob-1"), "bob", presence.PRESENCE_TTL)
    presence_sent.clear()
    presence.refresh(team_id=TEAM, conn="bob-1", username="bob")
    assert presence_sent == []

    time_passes()
    presence.refresh(team_id=TEAM, conn="ann-1", username="ann")

    assert presence_sent == [(TEAM, ["ann", "bob"])]


def test_a_join_records_the_heads_it_is_given_which_only_rise(presence_sent):
    from hunts.events import head_key

    cache.set(head_key("hunt", 9), 7)

    first = presence.join(
        team_id=TEAM, conn="ann-1", username="ann", heads={head_key("team", TEAM): 3, head_key("hunt", 9): 6}
    )
    second = presence.join(team_id=TEAM, conn="ann-2", username="ann", heads={head_key("team", TEAM): 4})

    # Each join gives back the heads as cached after it: the higher of the cached and the given.
    assert first.heads == {head_key("team", TEAM): 3, head_key("hunt", 9): 7}
    assert second.heads == {head_key("team", TEAM): 4}
    assert presence.join(team_id=TEAM, conn="ann-3", username="ann").heads == {}

    assert cache.get_many([head_key("team", TEAM), head_key("hunt", 9)]) == {
        head_key("team", TEAM): 4,
        head_key("hunt", 9): 7,
    }
    assert presence_sent == [(TEAM, ["ann"])]
