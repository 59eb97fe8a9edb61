"""Who of a team is online: one cache key per open socket, kept alive by the client's pings.

A connection's key lives PRESENCE_TTL seconds (30 s: three missed 10 s pings) unless a ping refreshes it, so a
socket lost without a disconnect (a killed daphne process) drops off the list at the next re-check by any of
its teammates' connections, which each do one every PRESENCE_TTL seconds. The team's index of connections is
a read-modify-write of one cache value: a rare update lost between two processes is repaired by the owning
connection's next re-check. The full list goes to the team group only when it changed.
"""

from django.core.cache import cache

from .events import send_ephemeral, team_group

PRESENCE_TTL = 30
INDEX_TTL = 24 * 3600


def _conn_key(conn: str) -> str:
    return f"presence:conn:{conn}"


def _index_key(team_id: int) -> str:
    return f"presence:team:{team_id}"


def _sent_key(team_id: int) -> str:
    return f"presence:sent:{team_id}"


def online(team_id: int) -> list[str]:
    """Usernames with at least one live connection, sorted; dead connections are dropped from the index."""
    index: dict[str, str] = cache.get(_index_key(team_id)) or {}
    alive = cache.get_many([_conn_key(conn) for conn in index])
    live = {conn: name for conn, name in index.items() if _conn_key(conn) in alive}
    if len(live) != len(index):
        cache.set(_index_key(team_id), live, INDEX_TTL)
    return sorted(set(live.values()))


def join(*, team_id: int, conn: str, username: str) -> list[str] | None:
    """Mark the connection online; returns the list for this connection alone when the team's is unchanged.

    When the list changed it went to the team group, which the connection has joined already.
    """
    cache.set(_conn_key(conn), username, PRESENCE_TTL)
    _index_add(team_id, conn, username)
    names, changed = _publish_if_changed(team_id)
    return None if changed else names


def leave(*, team_id: int, conn: str) -> None:
    cache.delete(_conn_key(conn))
    index = cache.get(_index_key(team_id)) or {}
    if index.pop(conn, None) is not None:
        cache.set(_index_key(team_id), index, INDEX_TTL)
    _publish_if_changed(team_id)


def refresh(*, team_id: int, conn: str, username: str, recheck: bool) -> None:
    """On ping: keep the connection's key alive (one cache call); on `recheck`, also repair and re-check."""
    if cache.touch(_conn_key(conn), PRESENCE_TTL) and not recheck:
        return
    # Expired (a flushed cache) or due for the periodic re-check.
    cache.set(_conn_key(conn), username, PRESENCE_TTL)
    _index_add(team_id, conn, username)
    _publish_if_changed(team_id)


def _index_add(team_id: int, conn: str, username: str) -> None:
    index = cache.get(_index_key(team_id)) or {}
    if index.get(conn) != username:
        index[conn] = username
        cache.set(_index_key(team_id), index, INDEX_TTL)


def _publish_if_changed(team_id: int) -> tuple[list[str], bool]:
    names = online(team_id)
    if cache.get(_sent_key(team_id)) == names:
        return names, False
    cache.set(_sent_key(team_id), names, INDEX_TTL)
    send_ephemeral(group=team_group(team_id), frame={"type": "presence", "online": names})
    return names, True
