"""schemathesis against /api/schema/ on a live daphne: every operation, a player's token, bounded examples.

0 server errors, and every response conforms to the schema: its status code is documented, and so are
its content type, headers and body. Generated identifiers are swapped most of the time for ones that
exist (the hunt, its puzzle, a hint, the player's guess), so the examples reach past the 404s.
"""

import json
import random

import pytest
import schemathesis
from django.db import connection
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from hunts.models import Membership
from puzzles.models import Hint
from puzzles.services import submit_guess
from testing import INTEGRATION
from testing.live import make_world
from testing.processes import RedisServer, Stack, database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EXAMPLES = 15  # per operation: about 500 requests for the ~35 operations
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    directory = tmp_path_factory.mktemp("schemathesis")
    with RedisServer(directory).running() as redis_server:
        url = database_url(connection.settings_dict)
        with Stack(database_url=url, redis_url=redis_server.url(0), directory=directory).started() as running:
            running.ensure("web1")
            yield running


@pytest.fixture(scope="module")
def base_url(stack) -> str:
    return f"http://127.0.0.1:{stack['web1'].port}"


@pytest.fixture
def world():
    """A running hunt; a player on a team with a guess, and the ids the examples should hit."""
    made = make_world(teams=2, members=2, hunt_slug="fuzz")
    hint = Hint.objects.create(puzzle=made.puzzle, order=1, text="Look up.", cost=1)
    team = made.teams[0]
    username, token = made.members[0][0]
    user = Token.objects.get(key=token).user
    guess, _ = submit_guess(team=team, user=user, puzzle_slug=made.puzzle.slug, text="first try")
    made.token, made.user, made.team = token, user, team
    made.known = {
        "hunt": made.hunt.slug,
        "puzzle": made.puzzle.slug,
        "hint_id": hint.pk,
        "guess_id": guess.pk,
    }
    return made


def openapi_document() -> dict:
    """The document /api/schema/ serves, generated in this process (the operations are collected from it)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


# Only the integration tier runs these tests; other runs collect (then deselect) one placeholder.
PLACEHOLDER = {
    "openapi": "3.0.3",
    "info": {"title": "-", "version": "-"},
    "paths": {"/-/": {"get": {"responses": {"200": {"description": "-"}}}}},
}
schema = schemathesis.openapi.from_dict(openapi_document() if INTEGRATION else PLACEHOLDER)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_and_never_with_a_server_error(case, base_url, world):
    rng = random.Random(repr(sorted(case.path_parameters.items())) if case.path_parameters else None)
    for name, value in world.known.items():
        if case.path_parameters and name in case.path_parameters and rng.random() < 0.8:
            case.path_parameters[name] = value
    try:
        case.call_and_validate(
            base_url=base_url, headers={"Authorization": f"Token {world.token}"}, checks=CHECKS, timeout=30
        )
    finally:
        # A generated `leave` must not end the run for the operations after it.
        Membership.objects.get_or_create(hunt=world.hunt, user=world.user, defaults={"team": world.team})
