"""REST API clients for tests."""

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def client_of(user) -> APIClient:
    """An API client that sends `user`'s token, as real clients do (not force_authenticate)."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
