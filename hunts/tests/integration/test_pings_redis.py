"""Pings on the Redis cache (hunts/pings.py): batched pongs, one pipeline, failures; presence round trips.

The presence rules themselves run on Redis too: hunts/tests/test_presence.py in this tier.
"""

import asyncio

import pytest
import redis
from django.core.cache import cache

from hunts import pings, presence
from hunts.events import head_key
from treasurehunt.cache import redis_cache

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_presence")]

HUNT, ALPHA, BRAVO = 7, 1, 2


@pytest.fixture
def trips(monkeypatch):
    """Round trips to Redis: pipelines executed and lone commands, and the batches served."""
    counted = {"pipelines": 0, "commands": [], "batches": []}
    real_execute, real_command = redis.client.Pipeline.execute, redis.Redis.execute_command
    real_serve = pings.serve_batch

    def execute(self, *args, **kwargs):
        counted["pipelines"] += 1
        return real_execute(self, *args, **kwargs)

    def command(self, *args, **kwargs):
        counted["commands"].append(args[0])
        return real_command(self, *args, **kwargs)

    def serve(batch):
        counted["batches"].append(len(batch))
        return real_serve(batch)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    monkeypatch.setattr(redis.Redis, "execute_command", command)
    monkeypatch.setattr(pings, "serve_batch", serve)
    return counted


def sockets_of(team_id: int, count: int) -> list[dict]:
    return [
        {"hunt_id": HUNT, "team_id": team_id, "conn": f"{team_id}-{n}", "username": f"u{team_id}-{n % 3}"}
        for n in range(count)
    ]


def test_the_cache_is_redis_here():
    assert redis_cache() is not None


async def test_fifty_concurrent_pings_share_one_pipeline_and_get_their_own_teams_heads(presence_sent, trips):
    cache.set_many({head_key("hunt", HUNT): 5, head_key("team", ALPHA): 3, head_key("team", BRAVO): 8})
    alpha, bravo = sockets_of(ALPHA, 25), sockets_of(BRAVO, 24)
    for socket in alpha + bravo:
        presence.join(team_id=socket["team_id"], conn=socket["conn"], username=socket["username"])
    staff = {"hunt_id": HUNT, "team_id": None, "conn": "staff-1", "username": "sam"}
    trips["pipelines"], trips["commands"] = 0, []

    pongs = await asyncio.gather(*(pings.cached_heads(**socket) for socket in alpha + bravo + [staff]))

    assert trips["batches"] == [50]
    assert trips["pipelines"] == 1
    assert trips["commands"] == []  # keys alive, team checks not due: nothing but the pipeline
    assert pongs == [{"team_seq": 3, "hunt_seq": 5}] * 25 + [{"team_seq": 8, "hunt_seq": 5}] * 24 + [
        {"team_seq": None, "hunt_seq": 5}
    ]


async def test_pings_arriving_apart_within_the_window_share_one_batch(presence_sent, trips):
    # 2,000 sockets pinging every 10 s send one ping every 5 ms: the window must gather them (fix 26).
    sockets = sockets_of(ALPHA, 4)

    async def ping_later(n, socket):
        await asyncio.sleep(n * 0.005)
        return await pings.cached_heads(**socket)

    await asyncio.gather(*(ping_later(n, socket) for n, socket in enumerate(sockets)))

    assert trips["batches"] == [4]


async def test_a_full_queue_goes_at_once_and_unknown_heads_are_null(presence_sent, trips, monkeypatch):
    monkeypatch.setattr(pings, "PING_WINDOW", 60)
    monkeypatch.setattr(pings, "PING_BATCH", 10)

    pongs = await asyncio.wait_for(
        asyncio.gather(*(pings.cached_heads(**socket) for socket in sockets_of(ALPHA, 10))), timeout=5
    )

    assert trips["batches"] == [10]
    assert pongs == [{"team_seq": None, "hunt_seq": None}] * 10


async def test_pings_keep_presence_alive_and_repair_a_flushed_cache(presence_sent):
    socket = sockets_of(ALPHA, 1)[0]
    presence.join(team_id=ALPHA, conn=socket["conn"], username=socket["username"])
    backend = redis_cache()
    key = backend.make_and_validate_key(presence.conn_key(socket["conn"]))
    client = backend.client()
    client.expire(key, 5)

    await pings.cached_heads(**socket)
    assert client.ttl(key) > 5
    cache.clear()
    presence_sent.clear()
    await pings.cached_heads(**socket)

    assert cache.get(presence.conn_key(socket["conn"])) == socket["username"]
    assert presence_sent == [(ALPHA, [socket["username"]])]


async def test_a_failed_batch_fails_each_of_its_pings_and_the_next_batch_works(presence_sent, monkeypatch):
    real_execute = redis.client.Pipeline.execute
    failures = iter([redis.ConnectionError("Redis is down")])

    def execute(self, *args, **kwargs):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    cache.set(head_key("hunt", HUNT), 5)

    failed = await asyncio.gather(
        *(pings.cached_heads(**socket) for socket in sockets_of(ALPHA, 3)), return_exceptions=True
    )
    again = await pings.cached_heads(**sockets_of(ALPHA, 1)[0])

    assert [type(result) for result in failed] == [redis.ConnectionError] * 3
    assert again == {"team_seq": None, "hunt_seq": 5}


def test_a_check_is_one_round_trip(presence_sent, trips):
    presence.join(team_id=ALPHA, conn="a-1", username="ann")
    trips["commands"] = []

    presence.join(team_id=ALPHA, conn="b-1", username="bob")
    presence.leave(team_id=ALPHA, conn="b-1")

    assert trips["commands"] == ["EVALSHA", "EVALSHA"]
    assert presence_sent == [(ALPHA, ["ann"]), (ALPHA, ["ann", "bob"]), (ALPHA, ["ann"])]


def test_a_join_records_the_hellos_heads_in_the_checks_round_trip(presence_sent, trips):
    cache.set(head_key("hunt", HUNT), 7)
    trips["pipelines"], trips["commands"] = 0, []

    online, heads = presence.join(
        team_id=ALPHA,
        conn="a-1",
        username="ann",
        heads={head_key("team", ALPHA): 3, head_key("hunt", HUNT): 6},
    )

    assert (trips["pipelines"], trips["commands"]) == (1, [])
    assert heads == {head_key("team", ALPHA): 3, head_key("hunt", HUNT): 7}  # as cached after the raise
    assert online is None and presence_sent == [(ALPHA, ["ann"])]  # the list changed: sent to the team
    assert cache.get_many([head_key("team", ALPHA), head_key("hunt", HUNT)]) == {
        head_key("team", ALPHA): 3,
        head_key("hunt", HUNT): 7,  # a head only rises
    }
    assert presence.join(team_id=ALPHA, conn="a-2", username="ann", heads={head_key("team", ALPHA): 4}) == (
        ["ann"],
        {head_key("team", ALPHA): 4},
    )
    assert cache.get(head_key("team", ALPHA)) == 4


def test_recorded_heads_only_rise_in_one_round_trip_each(trips):
    from hunts.events import record_heads

    record_heads({head_key("team", ALPHA): 5})  # registers the script
    trips["commands"] = []
    raised = record_heads({head_key("team", ALPHA): 3, head_key("hunt", HUNT): 2})

    assert trips["commands"] == ["EVALSHA"]
    assert raised == {head_key("team", ALPHA): 5, head_key("hunt", HUNT): 2}  # as cached after it
    assert cache.get_many([head_key("team", ALPHA), head_key("hunt", HUNT)]) == {
        head_key("team", ALPHA): 5,
        head_key("hunt", HUNT): 2,
    }


async def test_events_publish_their_heads_and_frames_in_one_round_trip_from_the_thread(trips, monkeypatch):
    """The cache and the layer share this Redis: publish() sends heads and frames in one pipeline, without
    the long way (record_heads, then send_frames), and the layer's subscribers get each frame once."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from hunts import events
    from hunts.models import Event

    for name in ("record_heads", "send_frames"):
        monkeypatch.setattr(events, name, lambda *args, name=name: pytest.fail(f"went the long way ({name})"))
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.team_group(ALPHA), channel)
    await layer.group_add(events.hunt_group(HUNT), channel)
    cache.set(head_key("hunt", HUNT), 9)  # above what this publish carries: stays
    trips["pipelines"], trips["commands"] = 0, []
    logged = [
        Event(hunt_id=HUNT, team_id=ALPHA, seq=10, kind="guess.judged", data={"n": 1}),
        Event(hunt_id=HUNT, team_id=None, seq=4, kind="announcement.posted", data={"n": 2}),
    ]

    await sync_to_async(events.publish, thread_sensitive=False)(HUNT, logged)

    assert (trips["pipelines"], trips["commands"]) == (1, [])
    assert cache.get_many([head_key("team", ALPHA), head_key("hunt", HUNT)]) == {
        head_key("team", ALPHA): 10,
        head_key("hunt", HUNT): 9,
    }
    got = [await asyncio.wait_for(layer.receive(channel), timeout=5) for _ in logged]
    assert got == [events.envelope(events.frame_of(event)) for event in logged]
    await asyncio.sleep(0.3)
    assert layer._get_layer().channels[channel].empty()  # each frame once
    await layer.group_discard(events.team_group(ALPHA), channel)
    await layer.group_discard(events.hunt_group(HUNT), channel)


def test_events_take_the_long_way_when_the_layer_is_on_another_server(monkeypatch):
    from channels.layers import channel_layers

    from hunts import events
    from treasurehunt.layers import PubSubChannelLayer

    monkeypatch.setitem(
        channel_layers.backends, "default", PubSubChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    )

    assert events._publish_with_heads({head_key("team", ALPHA): 1}, [("team.1", {"type": "x"})]) is False
    assert cache.get(head_key("team", ALPHA)) is None  # nothing written: the caller does it its own way
