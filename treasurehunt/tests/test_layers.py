"""The pub/sub channel layer's sliced group delivery (treasurehunt/layers.py).

The shard connection is driven without Redis: `_deliver` reads only its loop layer's `channels` (name ->
queue) and `groups` (group channel name -> member names), so a namespace holding the two stands in for it.
The integration test sends through the real layer on Redis.
"""

import asyncio
import contextlib
import logging
import runpy
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.conf import settings
from django.utils.module_loading import import_string
from redis._parsers import _AsyncHiredisParser

from treasurehunt import layers
from treasurehunt.layers import PubSubChannelLayer, SlicedShardConnection

SLICE = 100
DEFAULT_INLINE, DEFAULT_SLICE = layers.FANOUT_INLINE, layers.FANOUT_SLICE  # before the fixture below
BIG, SMALL = "th__group__hunt.1", "th__group__team.2"
SERIALIZER = PubSubChannelLayer(hosts=["redis://unused:6379/0"], prefix="th")  # never connects


@pytest.fixture(autouse=True)
def _slice(monkeypatch):
    monkeypatch.setattr(layers, "FANOUT_SLICE", SLICE)
    monkeypatch.setattr(layers, "FANOUT_INLINE", SLICE)


@pytest.fixture
def errors(caplog):
    """ERROR records of the layer (the fan-out task logs what it cannot deliver instead of raising): a
    function, as caplog starts a new list of records for the test's call after its fixtures ran."""
    caplog.set_level(logging.ERROR, logger="treasurehunt.layers")
    return lambda: [
        r for r in caplog.records if r.name == "treasurehunt.layers" and r.levelno >= logging.ERROR
    ]


def loop_layer(**groups: int) -> SimpleNamespace:
    """A stand-in loop layer with `count` member channels, each with its queue, per group name."""
    # The loop layer's channels, groups and direct senders, and the layer's (de)serializer.
    fake = SimpleNamespace(channels={}, groups={}, direct={}, channel_layer=SERIALIZER)
    for name, count in groups.items():
        members = {f"{name}!{n}" for n in range(count)}
        fake.groups[name] = members
        fake.channels.update((member, asyncio.Queue()) for member in members)
    return fake


def shard_for(fake: SimpleNamespace) -> SlicedShardConnection:
    return SlicedShardConnection("redis://unused:6379/0", fake)


def deliver_without_yielding(shard: SlicedShardConnection, name, data: bytes) -> None:
    """Run `_deliver` to its end in one step: it must not wait on anything (the receiver goes on at once)."""
    step = shard._deliver(name, data)
    with pytest.raises(StopIteration):
        step.send(None)


def queues(fake: SimpleNamespace, group: str) -> list[asyncio.Queue]:
    return [fake.channels[member] for member in sorted(fake.groups[group])]


def received(queue: asyncio.Queue) -> list[bytes]:
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


def filled(queue_list: list[asyncio.Queue]) -> int:
    return sum(not queue.empty() for queue in queue_list)


async def finish(shard: SlicedShardConnection) -> None:
    """Let the fan-out tasks run until every one has ended (and removed its entry)."""
    for _ in range(1000):
        if not shard.__dict__.get("_fanouts"):
            return
        await asyncio.sleep(0)
    pytest.fail(f"fan-outs still running: {sorted(shard._fanouts)}")


async def test_a_message_for_a_channel_reaches_only_its_queue():
    fake = loop_layer(**{SMALL: 3})
    fake.channels["th.specific.abc"] = own = asyncio.Queue()
    shard = shard_for(fake)

    deliver_without_yielding(shard, b"th.specific.abc", b"judged")

    assert received(own) == [b"judged"]
    assert filled(queues(fake, SMALL)) == 0


async def test_a_message_for_an_unknown_name_goes_nowhere():
    fake = loop_layer(**{SMALL: 3})
    shard = shard_for(fake)

    deliver_without_yielding(shard, b"th.specific.gone", b"late")
    deliver_without_yielding(shard, "th__group__nobody", b"late")

    assert filled(list(fake.channels.values())) == 0


async def test_a_group_of_up_to_a_slice_gets_the_message_before_any_await():
    fake = loop_layer(**{SMALL: 3, BIG: SLICE})
    shard = shard_for(fake)

    deliver_without_yielding(shard, SMALL.encode(), b"small")
    deliver_without_yielding(shard, BIG.encode(), b"exactly a slice")

    assert [received(queue) for queue in queues(fake, SMALL)] == [[b"small"]] * 3
    assert [received(queue) for queue in queues(fake, BIG)] == [[b"exactly a slice"]] * SLICE
    assert not shard.__dict__.get("_fanouts")  # no task was started for them


async def test_a_large_group_is_filled_a_slice_at_a_time_while_other_messages_go_at_once(errors):
    fake = loop_layer(**{BIG: 350, SMALL: 1})
    fake.channels["th.specific.own"] = own = asyncio.Queue()
    big = queues(fake, BIG)
    shard = shard_for(fake)

    deliver_without_yielding(shard, BIG.encode(), b"announcement")
    deliver_without_yielding(shard, SMALL.encode(), b"judged")
    deliver_without_yielding(shard, b"th.specific.own", b"pong")
    direct = sorted(fake.groups[BIG])[-1]
    deliver_without_yielding(shard, direct.encode(), b"direct")

    # The receiver went on before the announcement reached the big group's last slice.
    assert received(queues(fake, SMALL)[0]) == [b"judged"]
    assert received(own) == [b"pong"]
    assert received(fake.channels[direct]) == [b"direct"]
    assert filled(big) == 0
    progress = []
    while BIG in shard._fanouts and len(progress) < 100:
        await asyncio.sleep(0)
        progress.append(filled(big))
    assert BIG not in shard._fanouts  # the task ended and removed its entry
    steps = [after - before for before, after in zip([0, *progress], progress, strict=False)]
    assert max(steps) <= SLICE, progress  # the loop ran between slices
    assert sum(step > 0 for step in steps) >= 4, progress  # 350 members: four slices
    assert [received(queue) for queue in big] == [[b"announcement"]] * 350  # each exactly once
    assert not errors()


def direct_senders(fake: SimpleNamespace, group: str, *, leave_out: int = 0) -> dict[str, list]:
    """A recording sender for each member of the group but the first `leave_out` (sorted); what each got."""
    got = {}
    for member in sorted(fake.groups[group])[leave_out:]:
        got[member] = []

        async def send(text, into=got[member]):
            into.append(text)

        fake.direct[member] = send
    return got


async def test_a_direct_message_is_handed_to_each_members_sender_in_slices(errors):
    fake = loop_layer(**{BIG: 350})
    got = direct_senders(fake, BIG, leave_out=5)
    shard = shard_for(fake)
    frame = {"type": "event.forward", "kind": "leaderboard.updated", "text": '{"top": []}', "direct": True}

    deliver_without_yielding(shard, BIG.encode(), SERIALIZER.serialize(frame))

    assert sum(map(len, got.values())) == 0  # not before the receiver went on
    progress = []
    while BIG in shard._fanouts and len(progress) < 100:
        await asyncio.sleep(0)
        progress.append(sum(map(len, got.values())))
    steps = [after - before for before, after in zip([0, *progress], progress, strict=False)]
    assert max(steps) <= SLICE and sum(step > 0 for step in steps) >= 4, progress  # the loop ran between
    assert list(got.values()) == [['{"top": []}']] * 345  # each sender once, with the text as published
    # Members without a sender (a socket before its hello) get it queued, as any other message.
    left_out = sorted(fake.groups[BIG])[:5]
    assert [[SERIALIZER.deserialize(data) for data in received(fake.channels[m])] for m in left_out] == [
        [frame]
    ] * 5
    assert filled([fake.channels[m] for m in got]) == 0
    assert not errors()


async def test_a_direct_message_to_a_small_group_is_handed_over_before_the_receiver_goes_on():
    fake = loop_layer(**{SMALL: 3})
    got = direct_senders(fake, SMALL)
    shard = shard_for(fake)
    frame = {"type": "event.forward", "kind": "leaderboard.updated", "text": "{}", "direct": True}

    deliver_without_yielding(shard, SMALL.encode(), SERIALIZER.serialize(frame))

    assert list(got.values()) == [["{}"]] * 3
    assert filled(queues(fake, SMALL)) == 0


async def test_a_message_that_cannot_be_read_for_direct_delivery_is_queued_as_before(errors, caplog):
    fake = loop_layer(**{BIG: 150})
    got = direct_senders(fake, BIG)
    shard = shard_for(fake)
    unreadable = b"\xc1 direct \xc1"  # carries the mark's bytes, is not msgpack
    later = SERIALIZER.serialize(
        {"type": "event.forward", "kind": "leaderboard.updated", "text": "{}", "direct": True}
    )

    with caplog.at_level(logging.WARNING, logger="treasurehunt.layers"):
        deliver_without_yielding(shard, BIG.encode(), unreadable)
        deliver_without_yielding(shard, BIG.encode(), later)
        await finish(shard)

    assert [received(queue) for queue in queues(fake, BIG)] == [[unreadable]] * 150
    assert list(got.values()) == [["{}"]] * 150  # the group's delivery went on
    assert not errors()
    assert "could not read a group message for direct delivery" in caplog.text


async def test_a_message_not_marked_direct_is_queued_even_for_members_with_a_sender():
    fake = loop_layer(**{BIG: 150})
    got = direct_senders(fake, BIG)
    shard = shard_for(fake)
    logged = {"type": "event.forward", "kind": "announcement", "text": '{"seq": 3}'}

    deliver_without_yielding(shard, BIG.encode(), SERIALIZER.serialize(logged))
    await finish(shard)

    assert sum(map(len, got.values())) == 0
    assert [len(received(queue)) for queue in queues(fake, BIG)] == [1] * 150


async def test_a_sender_that_fails_is_logged_and_the_others_still_get_the_message(errors):
    fake = loop_layer(**{BIG: 150})
    got = direct_senders(fake, BIG)
    broken = sorted(fake.groups[BIG])[7]

    async def fails(text):
        raise RuntimeError("socket gone")

    fake.direct[broken] = fails
    shard = shard_for(fake)
    frame = {"type": "event.forward", "kind": "leaderboard.updated", "text": "{}", "direct": True}

    deliver_without_yielding(shard, BIG.encode(), SERIALIZER.serialize(frame))
    await finish(shard)

    assert sum(len(texts) for member, texts in got.items() if member != broken) == 149
    assert [r.getMessage() for r in errors()] == [f"could not hand a message to {broken}"]


async def test_messages_to_one_group_arrive_in_the_order_sent():
    fake = loop_layer(**{BIG: 350})
    shard = shard_for(fake)

    deliver_without_yielding(shard, BIG, b"A")
    deliver_without_yielding(shard, BIG, b"B")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert 0 < filled(queues(fake, BIG)) < 350  # A is under way
    deliver_without_yielding(shard, BIG, b"C")
    await finish(shard)

    assert [received(queue) for queue in queues(fake, BIG)] == [[b"A", b"B", b"C"]] * 350


async def test_a_group_that_shrinks_below_a_slice_still_waits_behind_its_delivery():
    fake = loop_layer(**{BIG: 350})
    shard = shard_for(fake)

    deliver_without_yielding(shard, BIG, b"A")
    await asyncio.sleep(0)
    waiting = [member for member in sorted(fake.groups[BIG]) if fake.channels[member].empty()]
    assert len(waiting) >= 200
    for member in waiting[10:] + [m for m in sorted(fake.groups[BIG]) if m not in waiting]:
        fake.groups[BIG].discard(member)
        del fake.channels[member]
    deliver_without_yielding(shard, BIG, b"C")  # ten members now, but A has not reached them yet
    await finish(shard)

    assert [received(fake.channels[member]) for member in waiting[:10]] == [[b"A", b"C"]] * 10


async def test_members_leaving_mid_delivery_are_skipped_and_the_delivery_ends(errors):
    fake = loop_layer(**{BIG: 350})
    shard = shard_for(fake)
    members = sorted(fake.groups[BIG])
    deliver_without_yielding(shard, BIG, b"A")
    deliver_without_yielding(shard, BIG, b"B")
    await asyncio.sleep(0)
    left = [member for member in members if fake.channels[member].empty()][:30]
    gone = {member: fake.channels.pop(member) for member in left}
    fake.groups[BIG].difference_update(left)

    await finish(shard)

    assert shard._fanouts == {}
    assert not errors()
    assert all(queue.empty() for queue in gone.values())
    stayed = [fake.channels[member] for member in members if member not in gone]
    assert [received(queue) for queue in stayed] == [[b"A", b"B"]] * 320
    deliver_without_yielding(shard, BIG, b"next")  # 320 members: a new delivery starts
    assert BIG in shard._fanouts
    await finish(shard)
    assert [received(queue) for queue in stayed] == [[b"next"]] * 320


async def test_a_group_emptied_mid_delivery_drops_its_queued_messages_quietly(errors):
    fake = loop_layer(**{BIG: 350})
    shard = shard_for(fake)
    deliver_without_yielding(shard, BIG, b"A")
    deliver_without_yielding(shard, BIG, b"B")
    await asyncio.sleep(0)
    for member in fake.groups.pop(BIG):
        del fake.channels[member]

    await finish(shard)

    assert shard._fanouts == {}
    assert not errors()


def test_the_settings_use_the_sliced_layer_when_redis_is_configured(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/4")
    evaluated = runpy.run_path(str(Path(settings.BASE_DIR) / "treasurehunt" / "settings.py"))

    backend = evaluated["CHANNEL_LAYERS"]["default"]["BACKEND"]
    assert backend == "treasurehunt.layers.PubSubChannelLayer"
    assert import_string(backend) is PubSubChannelLayer


async def joined(layer, groups: dict[str, int]) -> dict[str, list[str]]:
    """New channels of the layer joined to each group, as many as asked."""
    members = {}
    for group, count in groups.items():
        members[group] = [await layer.new_channel() for _ in range(count)]
        for channel in members[group]:
            await layer.group_add(group, channel)
    return members


def settings_host(**changes) -> dict:
    """The production settings' layer host (the integration tier's Redis), with `changes`."""
    (host,) = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    return {**host, **changes}


@pytest.fixture
async def redis_layer():
    """The app's layer on the test Redis as the settings configure it, under a prefix of its own; flushed
    after the test."""
    layer = PubSubChannelLayer(hosts=[settings_host()], prefix=f"test-{uuid.uuid4().hex}")
    yield layer
    await layer.flush()


@pytest.mark.integration
async def test_a_silent_redis_fails_a_publish_or_a_subscribe_instead_of_holding_it(silent_server):
    host = settings_host(address=silent_server)
    assert host["socket_timeout"] > 0 and host["socket_connect_timeout"] > 0
    layer = PubSubChannelLayer(hosts=[{**host, "socket_timeout": 0.5}], prefix="silent")
    try:
        # Bounded by the test at 10 s: without a socket timeout each would wait for good.
        with pytest.raises(redis.exceptions.TimeoutError):
            await asyncio.wait_for(layer.group_send_many([("hunt", {"type": "event.forward"})]), 10)
        # A local channel sends no SUBSCRIBE of its own: the group's is the first, and opens the connection.
        channel = await layer.new_local_channel()
        with pytest.raises(redis.exceptions.TimeoutError):
            await asyncio.wait_for(layer.group_add("hunt", channel), 10)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(layer.flush(), 5)


@pytest.mark.integration
async def test_a_channel_idle_for_longer_than_the_socket_timeout_still_gets_its_groups_messages(redis_layer):
    layer = redis_layer
    channel = await layer.new_channel()
    await layer.group_add("hunt", channel)
    await asyncio.sleep(settings_host()["socket_timeout"] + 0.5)  # nothing on the subscription meanwhile
    await layer.group_send("hunt", {"type": "event.forward", "n": 1})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "event.forward", "n": 1}


@pytest.mark.integration
async def test_group_sends_through_redis_reach_every_member_once(redis_layer):
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "treasurehunt.layers.PubSubChannelLayer"
    layer = redis_layer
    members = await joined(layer, {"hunt": 250, "team": 1})
    big, (small,) = members["hunt"], members["team"]
    assert all(isinstance(shard, SlicedShardConnection) for shard in layer._get_layer()._shards)

    await layer.group_send("hunt", {"type": "event.forward", "n": 1})
    await layer.group_send("team", {"type": "event.forward", "n": 2})
    await layer.group_send("hunt", {"type": "event.forward", "n": 3})

    async def two(channel):
        return [await layer.receive(channel), await layer.receive(channel)]

    got = await asyncio.wait_for(asyncio.gather(*(two(channel) for channel in big)), timeout=10)
    assert got == [[{"type": "event.forward", "n": 1}, {"type": "event.forward", "n": 3}]] * 250
    got = await asyncio.wait_for(layer.receive(small), timeout=10)
    assert got == {"type": "event.forward", "n": 2}
    # A later message to the group starts a delivery of its own once the first has ended.
    await layer.group_send("hunt", {"type": "event.forward", "n": 4})
    got = await asyncio.wait_for(asyncio.gather(*(layer.receive(channel) for channel in big)), timeout=10)
    assert got == [{"type": "event.forward", "n": 4}] * 250
    await asyncio.sleep(0.3)  # anything more would have arrived by now
    found = layer._get_layer().channels
    assert [found[channel].qsize() for channel in [*big, small]] == [0] * 251


@pytest.mark.integration
async def test_many_group_sends_go_in_one_round_trip_in_order(redis_layer):
    layer = redis_layer
    members = await joined(layer, {"hunt": 3, "team": 1})
    hunt_members, (team_member,) = members["hunt"], members["team"]
    shard = layer._get_layer()._shards[0]
    executed = []
    original = shard.publish_many

    async def counting(items):
        executed.append(len(items))
        await original(items)

    shard.publish_many = counting
    await layer.group_send_many(
        [
            ("hunt", {"type": "event.forward", "n": n})
            if n % 2
            else ("team", {"type": "event.forward", "n": n})
            for n in range(1, 7)
        ]
    )
    assert executed == [6]  # one pipeline for all six (a single shard)

    async def three(channel):
        return [(await layer.receive(channel))["n"] for _ in range(3)]

    got = await asyncio.wait_for(asyncio.gather(*(three(c) for c in hunt_members)), timeout=10)
    assert got == [[1, 3, 5]] * 3
    assert await asyncio.wait_for(three(team_member), timeout=10) == [2, 4, 6]


def test_the_defaults_hand_small_groups_over_at_once_and_large_ones_in_small_slices():
    # Slices of 5 keep a loop pass short during a broadcast to thousands (BENCHMARKS.md, fix 6).
    assert DEFAULT_INLINE >= 5 * DEFAULT_SLICE
    assert DEFAULT_SLICE <= 10


@pytest.mark.integration
async def test_delete_channel_forgets_the_queue_and_the_subscription(redis_layer):
    layer = redis_layer
    channel = await layer.new_channel()
    loop_layer_, shard = layer._get_layer(), layer._get_layer()._get_shard(channel)
    assert channel in loop_layer_.channels and channel in shard._subscribed_to
    await layer.delete_channel(channel)
    await layer.delete_channel(channel)  # idempotent
    assert channel not in loop_layer_.channels and channel not in shard._subscribed_to


@pytest.mark.integration
async def test_a_local_channel_gets_group_messages_without_a_subscription_of_its_own(redis_layer):
    layer = redis_layer
    local, subscribed = await layer.new_local_channel(), await layer.new_channel()
    loop_layer_ = layer._get_layer()
    assert local in loop_layer_.channels and local not in loop_layer_._get_shard(local)._subscribed_to
    assert subscribed in loop_layer_._get_shard(subscribed)._subscribed_to
    for channel in (local, subscribed):
        await layer.group_add("team", channel)

    await layer.group_send("team", {"type": "event.forward", "n": 1})

    got = await asyncio.wait_for(asyncio.gather(layer.receive(local), layer.receive(subscribed)), timeout=10)
    assert got == [{"type": "event.forward", "n": 1}] * 2
    await layer.delete_channel(local, groups=["team"])
    await layer.delete_channel(local, groups=["team"])  # idempotent
    assert local not in loop_layer_.channels
    assert loop_layer_.groups[loop_layer_._get_group_channel_name("team")] == {subscribed}


@pytest.mark.integration
async def test_delete_channel_also_leaves_the_groups_it_names(redis_layer):
    layer = redis_layer
    members = await joined(layer, {"solo": 1, "pair": 2})
    (solo,), (first, second) = members["solo"], members["pair"]
    await layer.group_add("pair", solo)
    loop_layer_ = layer._get_layer()
    solo_group, pair_group = (loop_layer_._get_group_channel_name(g) for g in ("solo", "pair"))
    shard = loop_layer_._get_shard(solo_group)

    await layer.delete_channel(solo, groups=["solo", "pair", "never-joined"])

    assert solo_group not in loop_layer_.groups and solo_group not in shard._subscribed_to
    assert loop_layer_.groups[pair_group] == {first, second}  # the others stay, and so does the group
    assert pair_group in loop_layer_._get_shard(pair_group)._subscribed_to
    await layer.delete_channel(solo, groups=["pair"])  # idempotent


@pytest.mark.integration
async def test_a_consumer_ending_while_a_frame_waits_leaves_no_channel_behind(redis_layer, monkeypatch):
    """hunts.consumers.dispatch_loop cancels the layer's source while it waits to dispatch: the consumer
    deletes its channel itself (channels_redis would only on a cancelled receive)."""
    from channels.exceptions import StopConsumer
    from channels.testing import WebsocketCommunicator

    from hunts.consumers import HuntConsumer

    group = f"g{uuid.uuid4().hex}"
    release, pushed = asyncio.Event(), []

    class Held(HuntConsumer):
        async def connect(self):
            self.closing = False
            await self.channel_layer.group_add(group, self.channel_name)
            await self.accept()

        async def receive(self, text_data=None, bytes_data=None, **kwargs):
            await release.wait()  # holds the dispatch lock
            raise StopConsumer()

        async def event_forward(self, message):
            pushed.append(message)

    taken = []
    receive = redis_layer.receive

    async def recording(channel):
        message = await receive(channel)
        taken.append(message)
        return message

    monkeypatch.setattr(redis_layer, "receive", recording)
    monkeypatch.setattr("hunts.consumers.get_channel_layer", lambda alias: redis_layer)
    communicator = WebsocketCommunicator(Held.as_asgi(), "/ws/hunts/x/")
    assert (await communicator.connect())[0]
    channels = redis_layer._get_layer().channels
    (channel,) = [name for name in channels if name.startswith(redis_layer._get_layer().prefix)]
    shard = redis_layer._get_layer()._get_shard(channel)
    assert channel not in shard._subscribed_to  # the consumer's own channel is local (new_local_channel)
    await communicator.send_to(text_data="hold")
    await asyncio.sleep(0.05)
    await redis_layer.group_send(group, {"type": "event.forward", "text": "{}"})
    for _ in range(250):  # the frame arrives and its source waits on the lock
        await asyncio.sleep(0.02)
        if taken:
            break
    assert taken == [{"type": "event.forward", "text": "{}"}]
    release.set()
    await communicator.wait(timeout=5)
    assert pushed == []
    assert channel not in channels
    assert channel not in redis_layer._get_layer()._get_shard(channel)._subscribed_to


async def test_the_in_memory_layer_sweeps_expired_entries_at_most_once_a_second(monkeypatch):
    from channels.layers import InMemoryChannelLayer

    from treasurehunt.layers import InMemoryLayer

    layer = InMemoryLayer(expiry=60)
    sweeps = []
    monkeypatch.setattr(InMemoryChannelLayer, "_clean_expired", lambda self: sweeps.append(1))
    now = [100.0]
    monkeypatch.setattr(layers.time, "monotonic", lambda: now[0])
    channel = await layer.new_channel()
    for n in range(50):
        await layer.send(channel, {"type": "event.forward", "n": n})
        await layer.receive(channel)
    assert sweeps == [1]  # the first call swept; the rest came within the second
    now[0] += layers.InMemoryLayer.CLEAN_EVERY
    await layer.send(channel, {"type": "event.forward"})
    await layer.receive(channel)
    assert sweeps == [1, 1]


async def test_the_in_memory_layer_still_drops_expired_messages_and_their_channels_groups(monkeypatch):
    from treasurehunt.layers import InMemoryLayer

    layer = InMemoryLayer(expiry=60)
    stuck, live = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("hunt", stuck)
    await layer.group_add("hunt", live)
    await layer.send(stuck, {"type": "event.forward", "n": 1})
    real_time = layers.time.time
    monkeypatch.setattr("channels.layers.time.time", lambda: real_time() + 61)  # the message is now old
    layer._swept_at = float("-inf")  # a second has passed since the last sweep
    await layer.group_send("hunt", {"type": "event.forward", "n": 2})
    assert stuck not in layer.groups["hunt"]  # a channel that stopped reading leaves its groups
    assert (await layer.receive(live))["n"] == 2


@pytest.mark.parametrize(
    ("hosts", "url", "same"),
    [
        (["redis://127.0.0.1:6379/0"], "redis://127.0.0.1:6379/1", True),  # pub/sub ignores the database
        (["redis://127.0.0.1/0"], "redis://127.0.0.1:6379/5", True),  # the default port
        (["redis://127.0.0.1:6379/0"], "redis://127.0.0.1:6380/1", False),
        (["redis://10.0.0.2:6379/0"], "redis://127.0.0.1:6379/1", False),
        (["redis://127.0.0.1:6379/0"], "rediss://127.0.0.1:6379/1", False),
        (["unix:///run/redis.sock?db=0"], "unix:///run/redis.sock?db=1", True),
        # sharded: a group's channel may live on the other server
        (["redis://127.0.0.1:6379/0", "redis://127.0.0.1:6380/0"], "redis://127.0.0.1:6379/1", False),
        ([("127.0.0.1", 6379)], "redis://127.0.0.1:6379/1", False),  # not a URL: not compared, never direct
    ],
)
def test_a_publish_reaches_the_layer_only_on_its_one_server(hosts, url, same):
    assert PubSubChannelLayer(hosts=hosts, prefix="th").publishes_on(url) is same


async def test_group_payloads_are_what_the_layers_group_send_publishes():
    layer = PubSubChannelLayer(hosts=["redis://unused:6379/0"], prefix="th")
    message = {"type": "event.forward", "kind": "guess.judged", "text": '{"type": "guess.judged"}'}

    [(channel, data)] = layer.group_payloads([("team.7", message)])

    assert channel == layer._get_layer()._get_group_channel_name("team.7")  # the name the receivers subscribe
    assert layer.deserialize(data) == message


@pytest.mark.integration
async def test_a_direct_sender_is_kept_only_for_a_channel_of_the_layer_and_forgotten_with_it(redis_layer):
    layer = redis_layer
    channel = await layer.new_local_channel()

    async def send(text):
        pass

    layer.set_direct(channel, send)
    layer.set_direct("th.specific.unknown", send)  # not a channel of this layer: ignored
    assert layer._get_layer().direct == {channel: send}
    await layer.delete_channel(channel)
    assert layer._get_layer().direct == {}
    other = await layer.new_local_channel()
    layer.set_direct(other, send)
    await layer.flush()
    assert layer._get_layer().direct == {}


@pytest.mark.integration
async def test_the_layers_connections_parse_with_hiredis(redis_layer):
    # As the cache's (test_cache.py): without hiredis redis-py parses every group message in Python.
    layer = redis_layer
    shard = layer._get_layer()._get_shard("hunt")
    shard._ensure_redis()
    connection = await shard._redis.connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, _AsyncHiredisParser)
    finally:
        await shard._redis.connection_pool.release(connection)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "event.forward", "n": 1})  # read through the same parser
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "event.forward", "n": 1}
