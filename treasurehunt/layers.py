"""The Redis pub/sub channel layer, handing a group message to its local sockets in slices.

channels_redis hands a message for a group to every local member's queue in one go. With thousands of
sockets in the hunt group (an announcement, `leaderboard.updated`) every member's consumer becomes
ready at once and the event loop runs them all in one pass: pushing 2,000 frames takes daphne about
450 ms, and a guess's `guess.judged` published meanwhile waited for all of it (BENCHMARKS.md, "Fixes").

Here a message for a group of more than FANOUT_INLINE local members is handed over by a task of its own,
FANOUT_SLICE members at a time, yielding to the loop between slices: a loop pass stays short, so other
sockets' frames are read and written between slices, and the receiver goes on to the next message at
once. Small slices cost a little more CPU in all (one more loop pass per slice) and cut the wait of
everything else: the p99 of a guess during a 2,000-socket broadcast fell from about 450 ms with slices
of 100 to about 60 ms with slices of 5. Messages to one group keep their order (one task per group, and
smaller messages for that group wait behind it); messages to different groups, which no client relies
on the relative order of, may overtake each other.

Publishing, too, takes many messages at once (group_send_many: one pipeline), so a connect storm's
presence frames do not queue up one round trip each in front of an announcement.

A message marked `direct` (hunts.events: frames no client orders against others, the clock's
`leaderboard.updated`) goes to a group's members without their queues: each member that gave the layer a
sender (`set_direct`: the live stream's consumers, once their hello is out) gets the message's text
handed to it, in the same slices for a large group; the others get it queued as before. It skips, for
each of thousands of sockets, the queue, the consumer's task waking up, the message's decoding and the
consumer's dispatch (BENCHMARKS.md, fix 41). Once a socket has a sender every direct message reaches it
that way, so none waits in its queue behind (the consumer drops one queued before, as older).
"""

import asyncio
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import decode_hosts

log = logging.getLogger(__name__)

FANOUT_INLINE = 100  # local members a group message is handed to at once
DIRECT_MARK = b"direct"  # in the msgpack bytes of a message with a `direct` key: only those are decoded
FANOUT_SLICE = 5  # members per loop pass of a larger delivery


class SlicedShardConnection(RedisSingleShardConnection):
    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        self._fanouts: dict[str, deque] = {}  # group channel -> messages waiting for its delivery task
        self._tasks: set[asyncio.Task] = set()  # delivery tasks, referenced until done

    async def _do_receiving(self):
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    if message is not None:
                        await self._deliver(message["channel"], message["data"])
                else:
                    await asyncio.sleep(0.1)
            except (TimeoutError, asyncio.CancelledError, GeneratorExit):
                raise
            except BaseException:
                log.exception("unexpected error in the channel layer's receiver")
                await asyncio.sleep(1)

    async def _deliver(self, name: bytes | str, data: bytes) -> None:
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        queue = layer.channels.get(name)
        if queue is not None:
            queue.put_nowait(data)
            return
        members = layer.groups.get(name)
        if not members:
            return
        if name in self._fanouts:  # a large delivery to this group is under way: keep the order
            self._fanouts[name].append(data)
        elif len(members) > FANOUT_INLINE:
            self._fanouts[name] = deque([data])
            task = asyncio.get_running_loop().create_task(self._fan_out(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:  # a sender returns without waiting (daphne's send): no await here suspends
            await self._hand(members, data, self._direct_text(data))

    def _put(self, channels, data: bytes) -> None:
        found = self.channel_layer.channels
        for channel in channels:
            queue = found.get(channel)
            if queue is not None:
                queue.put_nowait(data)

    async def _fan_out(self, name: str) -> None:
        pending = self._fanouts[name]
        try:
            while pending:
                data = pending.popleft()
                text = self._direct_text(data)
                members = list(self.channel_layer.groups.get(name, ()))
                for start in range(0, len(members), FANOUT_SLICE):
                    await self._hand(members[start : start + FANOUT_SLICE], data, text)
                    await asyncio.sleep(0)  # the members readied so far run, and sockets are read
        except Exception:
            log.exception("could not deliver a message to group %s", name)
        finally:
            del self._fanouts[name]

    def _direct_text(self, data: bytes) -> str | None:
        """The text of a message marked direct, else None (decoded once for the whole group).

        Only a message carrying the mark's bytes is decoded, and one that cannot be is left to the queues
        (where its consumers meet it as before) instead of ending the group's delivery."""
        if not self.channel_layer.direct or DIRECT_MARK not in data:
            return None
        try:
            message = self.channel_layer.channel_layer.deserialize(data)
            text = message.get("text")
            return text if message.get("direct") is True and isinstance(text, str) else None
        except Exception:
            log.warning("could not read a group message for direct delivery", exc_info=True)
            return None

    async def _hand(self, channels, data: bytes, text: str | None) -> None:
        """The message to these channels: its text to each one's sender when it is direct (`text`), else,
        and for a channel without a sender, into its queue."""
        if text is None:
            self._put(channels, data)
            return
        senders, queued = self.channel_layer.direct, []
        for channel in list(channels):
            send = senders.get(channel)
            if send is None:
                queued.append(channel)
                continue
            try:
                await send(text)
            except Exception:
                log.exception("could not hand a message to %s", channel)
        self._put(queued, data)

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        """PUBLISH each (channel, message) in order, in one round trip (a pipeline without MULTI)."""
        async with self._lock:
            self._ensure_redis()
            pipeline = self._redis.pipeline(transaction=False)
            for channel, message in items:
                pipeline.publish(channel, message)
            await pipeline.execute()


class SlicedLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [SlicedShardConnection(shard.host, self) for shard in self._shards]
        self.direct: dict[str, Callable[[str], Awaitable[None]]] = {}  # channel -> its sender (set_direct)

    def set_direct(self, channel: str, send: Callable[[str], Awaitable[None]]) -> None:
        """Hand the text of `direct` group messages for `channel` to `send` instead of its queue, whatever
        the group's size (so that once a socket has a sender, none of them waits in its queue behind)."""
        if channel in self.channels:
            self.direct[channel] = send

    async def flush(self) -> None:
        self.direct.clear()
        await super().flush()

    async def new_local_channel(self, prefix: str = "specific.") -> str:
        """A channel that only group messages reach: its queue, and no SUBSCRIBE of its own in Redis.

        channels_redis subscribes every new channel so that send() from any process reaches it; the live
        stream's consumers are only ever sent to through their groups (hunts.events), so each connect
        saves a SUBSCRIBE and each disconnect an UNSUBSCRIBE (BENCHMARKS.md, "Fixes"). A send() to such
        a channel is dropped by Redis, as one to any unsubscribed name.
        """
        channel = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        self.channels[channel] = asyncio.Queue()
        return channel

    async def delete_channel(self, channel: str, groups=()) -> None:
        """Forget a consumer's channel: its queue, its subscription, its place in these groups (idempotent).

        channels_redis does the first only when a receive on the channel is cancelled (hunts.consumers'
        dispatch_loop may be cancelled while it dispatches instead), and the groups only in group_discard,
        which a consumer cancelled before its disconnect handler never calls.
        """
        self.direct.pop(channel, None)
        for group in groups:
            if channel in self.groups.get(self._get_group_channel_name(group), ()):
                await self.group_discard(group, channel)  # which asserts membership: checked first
        if self.channels.pop(channel, None) is not None:
            shard = self._get_shard(channel)
            if channel in shard._subscribed_to:  # not for a local channel
                await shard.unsubscribe(channel)

    async def group_send_many(self, messages: list[tuple[str, dict]]) -> None:
        """group_send of each (group, message), in order per shard, one round trip per shard."""
        by_shard: dict[SlicedShardConnection, list[tuple[str, bytes]]] = {}
        for group, message in messages:
            channel = self._get_group_channel_name(group)
            by_shard.setdefault(self._get_shard(channel), []).append(
                (channel, self.channel_layer.serialize(message))
            )
        for shard, items in by_shard.items():
            await shard.publish_many(items)


class PubSubChannelLayer(RedisPubSubChannelLayer):
    """RedisPubSubChannelLayer whose per-loop layers deliver group messages in slices."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What SlicedLoopLayer's group channel names are made of, readable without an event loop.
        self.prefix = kwargs.get("prefix", "asgi")
        hosts = decode_hosts(kwargs.get("hosts", args[0] if args else None))
        self._address = hosts[0].get("address") if len(hosts) == 1 else None

    def publishes_on(self, url: str) -> bool:
        """Whether a PUBLISH on a connection to the Redis at `url` reaches this layer's subscribers.

        True when the layer has one shard, on that server: Redis's pub/sub ignores the database number.
        """
        return self._address is not None and _server(self._address) == _server(url)

    def group_payloads(self, messages: list[tuple[str, dict]]) -> list[tuple[str, bytes]]:
        """The (Redis channel, data) a group_send of each (group, message) publishes, for a caller that
        publishes them itself on a connection to the same server (publishes_on)."""
        name = SlicedLoopLayer._get_group_channel_name
        return [(name(self, group), self.serialize(message)) for group, message in messages]

    async def group_send_many(self, messages: list[tuple[str, dict]]) -> None:
        """Send many group messages in one round trip per shard (hunts.events.LoopPublisher's batches of
        ephemeral frames; logged events go out with their heads, hunts.events._publish_with_heads)."""
        await self._get_layer().group_send_many(messages)

    async def new_local_channel(self, prefix: str = "specific.") -> str:
        return await self._get_layer().new_local_channel(prefix)

    def set_direct(self, channel: str, send: Callable[[str], Awaitable[None]]) -> None:
        """On the running loop's layer: see SlicedLoopLayer.set_direct (delete_channel forgets it)."""
        self._get_layer().set_direct(channel, send)

    async def delete_channel(self, channel: str, groups=()) -> None:
        await self._get_layer().delete_channel(channel, groups)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        if loop not in self._layers:
            import channels_redis.pubsub as pubsub

            self._layers[loop] = SlicedLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            pubsub._wrap_close(self, loop)
        return self._layers[loop]


@functools.cache
def _server(url: str) -> tuple:
    """A Redis URL without its database: (scheme, host, port, socket path)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return ("unix", None, None, parts.path)
    return (parts.scheme, (parts.hostname or "localhost").lower(), parts.port or 6379, None)


class InMemoryLayer(InMemoryChannelLayer):
    """channels' in-memory layer (the embedded default), sweeping expired messages and groups at most once
    per CLEAN_EVERY seconds instead of on every send and receive.

    The sweep walks every channel and every group membership: on each of the thousands of receives a
    second that 500 sockets make, it was 69% of an embedded daphne's samples (`bench.run --mode embedded
    --profile guesses`; BENCHMARKS.md). Messages expire after 60 s and memberships after a day, so a
    sweep up to a second late changes nothing a client can see.
    """

    CLEAN_EVERY = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._swept_at = float("-inf")

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._swept_at < self.CLEAN_EVERY:
            return
        self._swept_at = now
        super()._clean_expired()
