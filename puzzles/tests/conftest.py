"""Fixtures shared by the play tests."""

import pytest


@pytest.fixture
def team(factories, hunt):
    """A team of `hunt` with one member; a module that needs a named team defines its own `team`."""
    return factories.MembershipFactory(team__hunt=hunt).team
