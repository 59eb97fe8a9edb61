"""Latency from a `geo` guess (REST POST by one member) to the teammate's `guess.judged` frame.

Runs the production stack on this machine (testing/processes.py: 2 daphne, judge and clock workers, beat,
a private redis-server) against a PostgreSQL database it creates and migrates if missing, then posts
guesses one at a time through daphne 1 while a teammate's socket listens on daphne 2:

    .venv/bin/python bench/geo_latency.py [--guesses 200] [--database-url postgres://postgres@127.0.0.1/th_bench]

Prints p50/p90/p99/max of POST -> guess.judged and of POST -> response, in milliseconds.
"""

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.processes import RedisServer, Stack  # noqa: E402


def ensure_database(url: str) -> None:
    """Create the database if it does not exist, then migrate it."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": "",
        "DJANGO_SETTINGS_MODULE": "treasurehunt.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def make_team() -> tuple[str, str, str]:
    """A fresh running hunt with a geo puzzle and a team of two; returns (hunt slug, token A, token B)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from hunts.models import Hunt, Membership, Team
    from puzzles.models import Answer, Puzzle, Round

    stamp = time.strftime("%Y%m%d%H%M%S")
    now = timezone.now()
    hunt = Hunt.objects.create(
        slug=f"bench-{stamp}",
        title=f"Bench {stamp}",
        starts_at=now - timezone.timedelta(minutes=1),
        ends_at=now + timezone.timedelta(hours=2),
        guess_limit_guesses=None,
    )
    round_ = Round.objects.create(hunt=hunt, title="Bench")
    puzzle = Puzzle.objects.create(
        hunt=hunt, round=round_, slug="tower", title="Tower", points=10, all_exact=False
    )
    Answer.objects.create(
        puzzle=puzzle, kind=Answer.Kind.GEO, parameters={"lat": 48.8584, "lng": 2.2945, "radius_m": 150}
    )
    team = Team.objects.create(hunt=hunt, name=f"Bench {stamp}", slug=f"bench-{stamp}", join_code=stamp[-8:])
    tokens = []
    for who in ("a", "b"):
        user = get_user_model().objects.create_user(f"bench-{who}-{stamp}", password=None)
        Membership.objects.create(hunt=hunt, team=team, user=user)
        tokens.append(Token.objects.create(user=user).key)
    return hunt.slug, tokens[0], tokens[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name}: n={len(ms)} p50={percentile(ms, 50):.1f} p90={percentile(ms, 90):.1f} "
        f"p99={percentile(ms, 99):.1f} max={max(ms):.1f} mean={statistics.fmean(ms):.1f} ms"
    )


def measure(http_url: str, ws_url: str, slug: str, tokens: tuple[str, str], guesses: int):
    """Post guesses as member A to http_url one at a time, each until B's socket at ws_url has its verdict.

    Returns the seconds from each POST to the guess.judged frame, and to the POST's response.
    """
    import httpx
    from websockets.sync.client import connect

    judged, responded = [], []
    socket_url = f"{ws_url}/ws/hunts/{slug}/"
    with (
        connect(socket_url, additional_headers={"Authorization": f"Token {tokens[1]}"}, proxy=None) as ws,
        httpx.Client(
            base_url=http_url, headers={"Authorization": f"Token {tokens[0]}"}, trust_env=False
        ) as api,
    ):
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        for i in range(guesses + 5):  # the first 5 warm up connections and are not counted
            started = time.perf_counter()
            response = api.post(
                f"/api/hunts/{slug}/puzzles/tower/guesses/", json={"answer": f"10.{i:05d}, 20.5"}
            )
            answered = time.perf_counter()
            assert response.status_code in (201, 202), response.text  # 201: judged before the response
            guess_id = response.json()["id"]
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame["type"] == "guess.judged" and frame["data"]["guess"]["id"] == guess_id:
                    break
            if i >= 5:
                judged.append(time.perf_counter() - started)
                responded.append(answered - started)
    return judged, responded


def setup_django(database_url: str, redis_url: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="treasurehunt.settings", DATABASE_URL=database_url, REDIS_URL=redis_url
    )
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guesses", type=int, default=200)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/th_bench")
    parser.add_argument("--http", help="post to this running stack (e.g. http://127.0.0.1:8080, nginx) ...")
    parser.add_argument(
        "--ws", help="... and listen here (e.g. ws://127.0.0.1:8080); --database-url is its database"
    )
    args = parser.parse_args()
    load = os.getloadavg()

    if args.http:
        setup_django(args.database_url, "")
        slug, *tokens = make_team()
        judged, responded = measure(
            args.http, args.ws or args.http.replace("http", "ws", 1), slug, tokens, args.guesses
        )
        runs = []
        print(f"stack: the running one at {args.http}")
    else:
        ensure_database(args.database_url)
        with (
            tempfile.TemporaryDirectory(prefix="th-bench-") as tmp,
            RedisServer(Path(tmp)).running() as redis,
        ):
            setup_django(args.database_url, redis.url(0))
            slug, *tokens = make_team()
            stack = Stack(database_url=args.database_url, redis_url=redis.url(0), directory=Path(tmp))
            with stack.started():
                stack.ensure("web1", "web2", "judge", "clock", "beat")
                http_url, ws_url = (f"{scheme}://127.0.0.1:{stack[web].port}" for scheme, web in
                                    (("http", "web1"), ("ws", "web2")))  # fmt: skip
                judged, responded = measure(http_url, ws_url, slug, tokens, args.guesses)
                runs = [float(t) for t in re.findall(RUN_TIME, stack["judge"].log())][-args.guesses :]
        print(
            "stack: 2 daphne (POST to one, socket on the other), judge worker (prefork -c 2), clock worker,"
        )
        print("       beat, PostgreSQL, a private redis-server; all on 127.0.0.1")
    print(
        f"load average (1 min) before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs"
    )
    print(summary("POST -> teammate's guess.judged", judged))
    print(summary("POST -> response (202, or 201 if already judged)", responded))
    if runs:
        print(summary("judge task run time (worker log)", runs))


RUN_TIME = r"judge_guess_task\[[-0-9a-f]+\] succeeded in ([0-9.]+)s"

if __name__ == "__main__":
    main()
