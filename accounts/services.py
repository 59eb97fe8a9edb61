"""Use cases of a player's account: the API token."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token

from hunts.events import end_user_sessions


def create_token(*, user: AbstractBaseUser) -> Token:
    """The user's API token, created on first request (one token per user)."""
    token, _ = Token.objects.get_or_create(user=user)
    return token


@transaction.atomic
def regenerate_token(*, user: AbstractBaseUser) -> Token:
    """Replace the user's API token: the old key stops working at once, and so do the user's sockets."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    end_user_sessions(user.pk)
    return token
