"""Create the bench's own hunt, players in teams of 4, a staff account and API tokens, in bulk.

No password is hashed: every account shares one precomputed unusable password and logs in by token.
Run in a process whose environment names the bench database:
    DJANGO_SETTINGS_MODULE=treasurehunt.settings python -m bench.setup_hunt --players 5000 --out hunt.json
The JSON it writes is all the load generator knows about the hunt (slug, tokens, puzzles).
"""

import argparse
import json
import secrets
import sys
import time
from datetime import timedelta

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PARTIALS = 5  # partial answers per exact puzzle: "STEP 1".."STEP 5"


def _join_code(prefix: str, n: int) -> str:
    """A Crockford code unique within the run: a random 3-character prefix, then n in 5 digits."""
    digits = []
    for _ in range(5):
        n, digit = divmod(n, 32)
        digits.append(CROCKFORD[digit])
    return prefix + "".join(reversed(digits))


def create_hunt(*, players: int, team_size: int = 4, puzzles: int = 200, judged_puzzles: int = 10) -> dict:
    """A running hunt with rule-free puzzles open to every team; returns what the load generator needs.

    `puzzles` are judged inline (exact answers: a final one and PARTIALS partial ones); `judged_puzzles`
    have a numeric answer, so their guesses go through the Celery judge.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from hunts.models import Hunt, Membership, Team
    from puzzles.models import Answer, Puzzle, Round

    User = get_user_model()
    tag = secrets.token_hex(3)
    slug = f"bench-{tag}"
    now = timezone.now()
    with transaction.atomic():
        hunt = Hunt.objects.create(
            slug=slug,
            title=f"Bench {tag}",
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(days=1),
            # A limit far above what the bench sends keeps the limit's query on the hot path.
            guess_limit_guesses=1_000_000,
            guess_limit_minutes=1,
            # Started already: the clock announces nothing in the middle of a measurement.
            announced_state=Hunt.State.RUNNING,
        )
        round_ = Round.objects.create(hunt=hunt, title="Bench round", order=1)
        rows = [
            Puzzle(
                hunt=hunt,
                round=round_,
                slug=f"p{i}",
                title=f"Puzzle {i}",
                points=10,
                order=i,
                has_rules=False,
                all_exact=True,
            )
            for i in range(puzzles)
        ] + [
            Puzzle(
                hunt=hunt,
                round=round_,
                slug=f"n{i}",
                title=f"Number {i}",
                points=10,
                order=puzzles + i,
                has_rules=False,
                all_exact=False,
            )
            for i in range(judged_puzzles)
        ]
        Puzzle.objects.bulk_create(rows)
        answers = []
        for puzzle in rows[:puzzles]:
            i = puzzle.order
            answers.append(Answer(puzzle=puzzle, kind="exact", parameters={"value": f"ANSWER {i}"}, order=0))
            answers += [
                Answer(
                    puzzle=puzzle,
                    kind="exact",
                    parameters={"value": f"STEP {k}"},
                    final=False,
                    response=f"Step {k} of the way.",
                    order=k,
                )
                for k in range(1, PARTIALS + 1)
            ]
        for puzzle in rows[puzzles:]:
            answers.append(
                Answer(puzzle=puzzle, kind="numeric", parameters={"value": puzzle.order, "tolerance": 0})
            )
        Answer.objects.bulk_create(answers)

        password = make_password(None)  # unusable, computed once
        users = [User(username=f"{slug}-p{i}", password=password) for i in range(players)]
        staff = User(username=f"{slug}-staff", password=password, is_staff=True)
        User.objects.bulk_create([*users, staff])
        code_prefix = "".join(secrets.choice(CROCKFORD) for _ in range(3))
        team_count = -(-players // team_size)
        teams = Team.objects.bulk_create(
            [
                Team(
                    hunt=hunt, name=f"Bench team {t}", slug=f"team-{t}", join_code=_join_code(code_prefix, t)
                )
                for t in range(team_count)
            ]
        )
        Membership.objects.bulk_create(
            [Membership(hunt=hunt, team=teams[i // team_size], user=user) for i, user in enumerate(users)]
        )
        tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=u) for u in [*users, staff]])
    keys = [t.key for t in tokens]
    if connection.vendor == "postgresql":
        # Planner statistics for the rows just written, as a running hunt's database has them.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {
        "slug": slug,
        "staff": {"username": staff.username, "token": keys[-1]},
        "teams": [
            [
                {"username": users[i].username, "token": keys[i]}
                for i in range(t * team_size, min(players, (t + 1) * team_size))
            ]
            for t in range(team_count)
        ],
        "puzzles": [p.slug for p in rows[:puzzles]],
        "judged_puzzles": [p.slug for p in rows[puzzles:]],
        "partials": PARTIALS,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, required=True)
    parser.add_argument("--team-size", type=int, default=4)
    parser.add_argument("--puzzles", type=int, default=200)
    parser.add_argument("--judged-puzzles", type=int, default=10)
    parser.add_argument("--out", required=True, help="where to write the hunt's JSON")
    args = parser.parse_args(argv)

    import django

    django.setup()
    started = time.monotonic()
    hunt = create_hunt(
        players=args.players,
        team_size=args.team_size,
        puzzles=args.puzzles,
        judged_puzzles=args.judged_puzzles,
    )
    with open(args.out, "w") as out:
        json.dump(hunt, out)
    print(
        f"setup_hunt: {hunt['slug']}: {args.players} players in {len(hunt['teams'])} teams "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
