"""The live stream across real processes (DESIGN sections 7 and 10): two daphne processes sharing
PostgreSQL and a private redis-server that the tests start, and restart, themselves.
"""

import asyncio
import resource
import time

import httpx
import pytest

from hunts.models import Event
from testing.live import LiveClient, make_world
from testing.processes import Stack, flush_retrying

from . import base_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DEADLINE = 10  # seconds for a frame to arrive: a functional timeout, not a latency assertion
STORM = 1000


@pytest.fixture(scope="module")
def stack(stack):
    """web1 and web2 running (conftest.py's stack)."""
    with flush_retrying():
        stack.ensure("web1", "web2")
        yield stack


async def post_guess(stack: Stack, name: str, world, token: str, answer: str) -> dict:
    url = f"{base_url(stack, name)}/api/hunts/{world.hunt.slug}/puzzles/{world.puzzle.slug}/guesses/"
    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        response = await client.post(
            url, json={"answer": answer}, headers={"Authorization": f"Token {token}"}
        )
    assert response.status_code == 201, response.text
    return response.json()


async def post_announcement(stack: Stack, name: str, world, text: str) -> dict:
    url = f"{base_url(stack, name)}/api/hunts/{world.hunt.slug}/announcements/"
    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        response = await client.post(
            url, json={"text": text}, headers={"Authorization": f"Token {world.staff_token}"}
        )
    assert response.status_code == 201, response.text
    return response.json()


def judged(guess_id: int):
    return lambda f: f["type"] == "guess.judged" and f["data"]["guess"]["id"] == guess_id


def test_guess_posted_to_one_process_reaches_a_teammate_on_the_other(stack):
    world = make_world(teams=2, members=2)
    (_, ann), (_, bob) = world.members[0]
    (_, cat), _ = world.members[1]

    async def scenario():
        bob_socket = LiveClient(base_url(stack, "web2"), world.hunt.slug, bob)
        cat_socket = LiveClient(base_url(stack, "web2"), world.hunt.slug, cat)
        await bob_socket.connect()
        await cat_socket.connect()
        try:
            guess = await post_guess(stack, "web1", world, ann, "DIM BEAM")
            frame = await bob_socket.wait_for(judged(guess["id"]), timeout=DEADLINE)
            # The other team hears nothing of it (their own presence frames aside).
            await asyncio.sleep(0.5)
            cat_kinds = {f["type"] for _, f in cat_socket.frames}
        finally:
            await bob_socket.close()
            await cat_socket.close()
        return frame, cat_kinds

    frame, cat_kinds = asyncio.run(scenario())
    assert frame["stream"] == "team"
    assert frame["data"]["guess"]["answer"] == "DIM BEAM"
    assert frame["data"]["guess"]["status"] == "incorrect"
    assert frame["data"]["guess"]["user"] == "p0-0"
    assert cat_kinds <= {"hello", "presence"}


def test_clients_notice_a_restarted_redis_through_pong_heads_and_resume_with_nothing_lost(
    stack, redis_server
):
    """Pushes committed while Redis is down are lost, and the cached heads with them: pongs then say null
    (or a head above what a client holds), and the clients' resumes bring back every event, in order, once."""
    world = make_world(teams=1, members=2)
    (_, ann), (_, bob) = world.members[0]
    team = world.teams[0]

    async def scenario():
        clients = [
            LiveClient(base_url(stack, "web1"), world.hunt.slug, ann),
            LiveClient(base_url(stack, "web2"), world.hunt.slug, bob),
        ]
        for client in clients:
            await client.connect()
        try:
            first = await post_guess(stack, "web1", world, ann, "FIRST")
            await post_announcement(stack, "web2", world, "Before the outage")
            for client in clients:
                await client.wait_for(judged(first["id"]), timeout=DEADLINE)
                await client.wait_for(lambda f: f["type"] == "announcement.posted", timeout=DEADLINE)
            held_before = [dict(client.held) for client in clients]

            redis_server.stop()
            # Committed while the layer and the cache are gone: the publish fails (logged), the guess stands.
            during = await post_guess(stack, "web1", world, ann, "DURING")
            await post_announcement(stack, "web2", world, "During the outage")
            redis_server.start()
            restarted = time.monotonic()
            await post_guess(stack, "web2", world, ann, "AFTER")  # live or not: the layer is reconnecting
            lost = [any(judged(during["id"])(f) for _, f in client.frames) for client in clients]

            pongs = [await client.catch_up() for client in clients]
            # Live again once each process's layer has reconnected and subscribed again (within seconds).
            live_after = None
            for attempt in range(DEADLINE * 2):
                probe = await post_guess(stack, "web1", world, ann, f"PROBE {attempt}")
                try:
                    for client in clients:
                        await client.wait_for(judged(probe["id"]), timeout=0.5)
                except TimeoutError:
                    continue
                live_after = time.monotonic() - restarted
                break
            for client in clients:
                await client.catch_up()  # probes pushed before the layer was back
            return clients, held_before, lost, pongs, live_after
        finally:
            for client in clients:
                await client.close()

    clients, held_before, lost, pongs, live_after = asyncio.run(scenario())
    assert live_after is not None, "live pushes never came back after the Redis restart"
    print(f"\nlive pushes back {live_after:.1f} s after the Redis restart")
    team_seqs = list(Event.objects.filter(team=team).order_by("seq").values_list("seq", flat=True))
    hunt_seqs = list(
        Event.objects.filter(hunt=world.hunt, team__isnull=True).order_by("seq").values_list("seq", flat=True)
    )
    assert len(team_seqs) >= 4 and len(hunt_seqs) == 2
    assert lost == [False, False]  # the outage did lose pushes: only the resume can bring them back
    for client, before, pong in zip(clients, held_before, pongs, strict=True):
        for stream in ("team", "hunt"):
            head = pong[f"{stream}_seq"]
            assert head is None or head > before[stream], (stream, head, before)
        assert client.applied["team"] == team_seqs
        assert client.applied["hunt"] == hunt_seqs


def test_a_thousand_sockets_connecting_at_once_all_get_their_hello(stack):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < STORM + 1000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, STORM + 4000), hard))
    world = make_world(teams=STORM // 4, members=4)
    tokens = [token for team in world.members for _, token in team]
    urls = [base_url(stack, "web1"), base_url(stack, "web2")]

    async def storm():
        clients = [LiveClient(urls[i % 2], world.hunt.slug, token) for i, token in enumerate(tokens)]
        started = time.monotonic()
        results = await asyncio.gather(*(c.connect(timeout=60) for c in clients), return_exceptions=True)
        took = time.monotonic() - started
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        return results, took

    results, took = asyncio.run(storm())
    failures = [r for r in results if isinstance(r, BaseException)]
    print(
        f"\n{STORM} sockets: {len(results) - len(failures)} hellos, {len(failures)} failures in {took:.1f} s"
    )
    assert failures == [], failures[:5]
    assert all(r["type"] == "hello" and r["team"] is not None for r in results)
