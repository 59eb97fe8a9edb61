"""ASGI middleware of the live stream (DESIGN section 7): the origin rule and `Authorization: Token` auth."""

from importlib import import_module
from types import SimpleNamespace
from urllib.parse import urlsplit

from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host
from django.utils.functional import SimpleLazyObject

MAX_TOKEN_LENGTH = 64


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin1")
    return None


def token_key(scope) -> str | None:
    """The key of an `Authorization: Token <key>` header; "" for a Token header without a usable key."""
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, key = value.strip().partition(" ")
    if scheme.lower() != "token":
        return None
    key = key.strip()
    return key if 0 < len(key) <= MAX_TOKEN_LENGTH and " " not in key else ""


def origin_allowed(scope) -> bool:
    """An Origin header must name an allowed host; without one (not a browser) the handshake needs a token.

    Cookie auth without an Origin is what a cross-site page could make a browser do, so it is refused.
    """
    origin = _header(scope, b"origin")
    if origin is None:
        return bool(token_key(scope))
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    host, _ = split_domain_port(netloc.rpartition("@")[2])
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # what Django itself allows for HTTP
    return bool(host) and validate_host(host, allowed)


class OriginRuleMiddleware:
    """Refuses the handshake (HTTP 403) of a socket breaking the origin rule, before any auth work."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)


def user_for_token(key: str):
    """The active user owning the API token, else anonymous."""
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first() if key else None
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenHeaderMiddleware(BaseMiddleware):
    """An `Authorization: Token <key>` header replaces the session user; a bad token is anonymous.

    The token is looked up lazily, inside the consumer's one database call after accept.
    """

    async def __call__(self, scope, receive, send):
        key = token_key(scope)
        if key is not None:
            # The consumer reads the token's user with its hunt and team in one statement (token_key);
            # anything else asking for scope["user"] looks it up.
            scope = dict(scope, user=SimpleLazyObject(lambda: user_for_token(key)), token_key=key)
        return await super().__call__(scope, receive, send)


class StreamSessionMiddleware(BaseMiddleware):
    """scope["session"]: the session named by the socket's cookie, not yet read.

    channels' SessionMiddleware does the same and also wraps send, to save a changed session on
    `http.response.start`, which a socket never sends: on the live stream its wrapper only read the session
    twice for every frame sent (BENCHMARKS.md, fix 28).
    """

    def __init__(self, inner):
        super().__init__(inner)
        self.store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        if "session" not in scope:
            scope = dict(scope, session=self.store(scope["cookies"].get(settings.SESSION_COOKIE_NAME)))
        return await super().__call__(scope, receive, send)


class SessionUserMiddleware(BaseMiddleware):
    """scope["user"]: the session's user (Django's own check, session hash included), read when first asked
    for: in the consumer's one database hop, or never for a socket with a token.

    channels' AuthMiddleware reads it before the consumer starts, in a hop of its own to the process's one
    thread-sensitive thread, for every socket (BENCHMARKS.md, fix 28).
    """

    async def __call__(self, scope, receive, send):
        if "user" not in scope:
            request = SimpleNamespace(session=scope["session"])  # all that auth.get_user reads
            scope = dict(scope, user=SimpleLazyObject(lambda: auth.get_user(request)))
        return await super().__call__(scope, receive, send)


def stream_auth(inner):
    """channels' AuthMiddlewareStack for the live stream: the session's user, and a token's in its place."""
    return CookieMiddleware(StreamSessionMiddleware(SessionUserMiddleware(TokenHeaderMiddleware(inner))))
