"""factory_boy factories with only the required fields; tests pass whatever else they need."""

from datetime import timedelta

import factory
from django.conf import settings
from django.utils import timezone
from django.utils.text import slugify

from hunts.models import Hunt, Membership, Team
from puzzles.models import Answer, Hint, Puzzle, Round, Treasure

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def crockford_code(n: int, length: int = 8) -> str:
    """n written in Crockford base32, zero-padded to length: distinct n give distinct codes."""
    digits = []
    for _ in range(length):
        n, digit = divmod(n, 32)
        digits.append(CROCKFORD[digit])
    return "".join(reversed(digits))


class UserFactory(factory.django.DjangoModelFactory):
    username = factory.Sequence(lambda n: f"player{n}")
    password = factory.django.Password("pw")

    class Meta:
        model = settings.AUTH_USER_MODEL


class HuntFactory(factory.django.DjangoModelFactory):
    slug = factory.Sequence(lambda n: f"hunt-{n}")
    title = factory.Sequence(lambda n: f"Hunt {n}")
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    # Relative to starts_at so that a hunt made to start later still ends after it starts.
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(days=1, hours=1))
    published = True

    class Meta:
        model = Hunt


class TeamFactory(factory.django.DjangoModelFactory):
    hunt = factory.SubFactory(HuntFactory)
    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.LazyAttribute(lambda o: slugify(o.name))
    join_code = factory.Sequence(crockford_code)

    class Meta:
        model = Team


class MembershipFactory(factory.django.DjangoModelFactory):
    team = factory.SubFactory(TeamFactory)
    hunt = factory.LazyAttribute(lambda o: o.team.hunt)
    user = factory.SubFactory(UserFactory)

    class Meta:
        model = Membership


class RoundFactory(factory.django.DjangoModelFactory):
    hunt = factory.SubFactory(HuntFactory)
    title = factory.Sequence(lambda n: f"Round {n}")

    class Meta:
        model = Round


class PuzzleFactory(factory.django.DjangoModelFactory):
    hunt = factory.SubFactory(HuntFactory)
    round = factory.SubFactory(RoundFactory, hunt=factory.SelfAttribute("..hunt"))
    slug = factory.Sequence(lambda n: f"puzzle-{n}")
    title = factory.Sequence(lambda n: f"Puzzle {n}")
    points = 10

    class Meta:
        model = Puzzle


class AnswerFactory(factory.django.DjangoModelFactory):
    puzzle = factory.SubFactory(PuzzleFactory)
    kind = Answer.Kind.EXACT
    parameters = factory.Dict({"value": "ANSWER"})
    final = True

    class Meta:
        model = Answer


class HintFactory(factory.django.DjangoModelFactory):
    puzzle = factory.SubFactory(PuzzleFactory)
    order = factory.Sequence(lambda n: n)
    text = factory.Sequence(lambda n: f"Hint {n}")

    class Meta:
        model = Hint


class TreasureFactory(factory.django.DjangoModelFactory):
    hunt = factory.SubFactory(HuntFactory)
    slug = factory.Sequence(lambda n: f"treasure-{n}")
    name = factory.Sequence(lambda n: f"Treasure {n}")

    class Meta:
        model = Treasure
