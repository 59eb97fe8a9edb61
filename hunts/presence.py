"""Who of a team is online: one cache key per open socket, kept alive by the client's pings.

A connection's key lives PRESENCE_TTL seconds (30 s: three missed 10 s pings) unless a ping refreshes it.
The team's index lists its connections. A check (on join, on leave, and periodically on ping) drops the
index entries whose key is gone and sends the full list to the team group only when it differs from the
last list sent.

Periodic checks are per team and per process, not per connection: a ping runs one only when no socket of
the same team in this process checked within PRESENCE_TTL (its joins and leaves count). So a socket lost
without a disconnect (a killed daphne process) drops off the list at most PRESENCE_TTL after its last ping
plus one check interval (PRESENCE_TTL and one ping) of any process holding a live teammate. A check also
re-adds to the index this process's own sockets of the team whose key is alive, so an index entry lost
(evicted, or a race between threads on a non-Redis cache) comes back; a connection key lost (a flushed
cache) is noticed by that socket's next ping, which repairs the key and its entry at once.

On Redis (treasurehunt.cache.RedisCache) a check is one Lua script, atomic, one round trip: the index is a
hash of connection key -> username and the last list sent is a set, so two processes never both send the
same change. The script reads the connection keys named in the index, which suits a single Redis server
(not a cluster). Other caches (the embedded default's LocMemCache) take the same steps through Django's
cache API.
"""

import threading
import time
from typing import NamedTuple

from django.core.cache import cache

from treasurehunt.cache import redis_cache

from .events import record_heads, send_ephemeral, team_group

PRESENCE_TTL = 30
INDEX_TTL = 24 * 3600

_lock = threading.Lock()
_local: dict[int, dict[str, str]] = {}  # team id -> {conn: username} of this process's open sockets
_checked_at: dict[int, float] = {}  # team id -> time.monotonic() of this process's last check of the team


def conn_key(conn: str) -> str:
    return f"presence:conn:{conn}"


def _index_key(team_id: int) -> str:
    return f"presence:members:{team_id}"


def _online_key(team_id: int) -> str:
    return f"presence:online:{team_id}"


class Joined(NamedTuple):
    online: list[str] | None  # the list for the joining connection alone; None: it went to the team group
    heads: dict[str, int] | None  # the heads as cached after raising them; None: the cache failed to


def join(*, team_id: int, conn: str, username: str, heads: dict[str, int] | None = None) -> Joined:
    """Mark the connection online: the team's list for this connection alone when it is unchanged (when it
    changed it went to the team group, which the connection has joined already).

    `heads` (event heads read for the socket's hello) are raised as record_heads raises them, on Redis in
    the same round trip as the check, and come back as cached after it.
    """
    with _lock:
        _local.setdefault(team_id, {})[conn] = username
    names, changed, raised = _check(team_id, conn=conn, username=username, heads=heads)
    return Joined(None if changed else names, raised)


def leave(*, team_id: int, conn: str) -> None:
    with _lock:
        sockets = _local.get(team_id, {})
        sockets.pop(conn, None)
        if not sockets:
            _local.pop(team_id, None)
            _checked_at.pop(team_id, None)
    _check(team_id, conn=conn, username=None)


def refresh(*, team_id: int, conn: str, username: str, alive: bool | None = None) -> None:
    """On ping: keep the connection's key alive, repair it when it was gone, and check the team when due.

    `alive` is whether the caller refreshed the key already (the ping batch's EXPIRE); None refreshes it here.
    """
    if alive is None:
        alive = cache.touch(conn_key(conn), PRESENCE_TTL)
    if alive and not _due(team_id):
        return
    _check(team_id, conn=conn, username=username)


def _due(team_id: int) -> bool:
    """True (and the check is the caller's) when no socket of this process checked the team lately."""
    now = time.monotonic()
    with _lock:
        last = _checked_at.get(team_id)
        if last is not None and now - last < PRESENCE_TTL:
            return False
        _checked_at[team_id] = now
        return True


def _check(
    team_id: int, *, conn: str, username: str | None, heads: dict[str, int] | None = None
) -> tuple[list[str], bool, dict[str, int] | None]:
    """Set (or, without a username, delete) the connection, drop dead entries, send the list if it changed;
    with `heads`, raise them first. Returns the list, whether it changed, and the heads as record_heads."""
    with _lock:
        others = {c: name for c, name in _local.get(team_id, {}).items() if c != conn}
        if team_id in _local:
            _checked_at[team_id] = time.monotonic()
    backend = redis_cache()
    if backend is None:
        raised = record_heads(heads or {})
        names, changed = _check_in_cache(team_id, conn=conn, username=username, others=others)
    else:
        names, changed, raised = _check_in_redis(
            backend, team_id, conn=conn, username=username, others=others, heads=heads
        )
    if changed:
        send_ephemeral(group=team_group(team_id), frame={"type": "presence", "online": names})
    return names, changed, raised


def _check_in_cache(
    team_id: int, *, conn: str, username: str | None, others: dict[str, str]
) -> tuple[list[str], bool]:
    if username is None:
        cache.delete(conn_key(conn))
    else:
        cache.set(conn_key(conn), username, PRESENCE_TTL)
    stored = cache.get_many([_index_key(team_id), _online_key(team_id)])
    index: dict[str, str] = {**(stored.get(_index_key(team_id)) or {}), **others}
    index.pop(conn, None)
    if username is not None:
        index[conn] = username
    alive = cache.get_many([conn_key(c) for c in index])
    live = {c: name for c, name in index.items() if conn_key(c) in alive}
    cache.set(_index_key(team_id), live, INDEX_TTL)
    names = sorted(set(live.values()))
    if (stored.get(_online_key(team_id)) or []) == names:
        return names, False
    cache.set(_online_key(team_id), names, INDEX_TTL)
    return names, True


# KEYS: the team's index (hash), its last list sent (set), the connection's key.
# ARGV: "join" or "leave", connection TTL, index TTL, username, the key's serialized value, then pairs of
# (connection key, username) of the process's other sockets of the team, re-added when their key is alive.
# Returns {changed (0/1), live usernames (unsorted, distinct)}.
CHECK = """
local index, online, conn = KEYS[1], KEYS[2], KEYS[3]
if ARGV[1] == 'leave' then
    redis.call('DEL', conn)
    redis.call('HDEL', index, conn)
else
    redis.call('SET', conn, ARGV[5], 'EX', ARGV[2])
    redis.call('HSET', index, conn, ARGV[4])
    for i = 6, #ARGV, 2 do
        if redis.call('EXISTS', ARGV[i]) == 1 then
            redis.call('HSET', index, ARGV[i], ARGV[i + 1])
        end
    end
end
local entries = redis.call('HGETALL', index)
local seen, names = {}, {}
for i = 1, #entries, 2 do
    if redis.call('EXISTS', entries[i]) == 1 then
        local name = entries[i + 1]
        if not seen[name] then
            seen[name] = true
            names[#names + 1] = name
        end
    else
        redis.call('HDEL', index, entries[i])
    end
end
redis.call('EXPIRE', index, ARGV[3])
local changed = redis.call('SCARD', online) ~= #names
for _, name in ipairs(names) do
    if changed then break end
    changed = redis.call('SISMEMBER', online, name) == 0
end
if changed then
    redis.call('DEL', online)
    if #names > 0 then
        redis.call('SADD', online, unpack(names))
        redis.call('EXPIRE', online, ARGV[3])
    end
end
return {changed and 1 or 0, names}
"""


def _check_in_redis(
    backend, team_id: int, *, conn: str, username: str | None, others: dict[str, str], heads=None
):
    key = backend.make_and_validate_key
    keys = [key(_index_key(team_id)), key(_online_key(team_id)), key(conn_key(conn))]
    if username is None:
        args = ["leave", PRESENCE_TTL, INDEX_TTL, "", ""]
    else:
        args = ["join", PRESENCE_TTL, INDEX_TTL, username, backend.dumps(username)]
        for other, name in others.items():
            args += [key(conn_key(other)), name]
    if heads:  # one pipeline: the heads, then the check (as EVAL: a pipeline sends it as it is)
        raised, (found,) = backend.after_heads(
            heads, lambda pipeline: pipeline.eval(CHECK, len(keys), *keys, *args)
        )
        if isinstance(found, Exception):
            raise found
        changed, live = found
    else:
        raised = {}
        changed, live = backend.script(CHECK)(keys=keys, args=args)
    return sorted({name.decode() for name in live}), bool(changed), raised
