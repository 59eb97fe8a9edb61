"""The live stream's session and user middleware (hunts.middleware.stream_auth): nothing read before the
consumer asks, no wrapper around send, and Django's own session check when it does ask."""

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils.functional import empty
from rest_framework.authtoken.models import Token

from hunts.middleware import stream_auth
from testing.factories import UserFactory

pytestmark = pytest.mark.django_db


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def through(scope_headers: list[tuple[bytes, bytes]], stack=stream_auth) -> tuple[dict, bool]:
    """The scope the inner application gets, and whether it got the very send given to the stack.

    Run from this (sync) thread: a thread-sensitive database hop in the stack would run its queries here.
    """
    seen = {}

    async def inner(scope, receive, send):
        seen["scope"], seen["send"] = scope, send

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        pass

    scope = {"type": "websocket", "path": "/ws/hunts/harbour/", "headers": scope_headers}
    async_to_sync(stack(inner))(scope, receive, send)
    return seen["scope"], seen["send"] is send


def cookie_header(cookie: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={cookie}".encode())


def test_nothing_is_read_before_the_consumer_and_send_is_not_wrapped(django_assert_num_queries):
    cookie = session_cookie(UserFactory(username="ann"))
    with django_assert_num_queries(0):
        scope, same_send = through([cookie_header(cookie)])
    assert scope["user"]._wrapped is empty  # not looked up yet
    assert scope["session"].session_key == cookie and not scope["session"].accessed
    assert same_send  # frames go straight out: no session wrapper in between


def test_channels_own_stack_would_read_both_at_once(django_assert_num_queries):
    # What the test above guards against: channels' AuthMiddlewareStack reads the session and the user
    # before the consumer starts, and wraps send.
    cookie = session_cookie(UserFactory(username="ann"))
    with django_assert_num_queries(2):
        scope, same_send = through([cookie_header(cookie)], stack=AuthMiddlewareStack)
    assert not same_send


def test_the_session_user_is_read_when_asked_for(django_assert_num_queries):
    ann = UserFactory(username="ann")
    scope, _ = through([cookie_header(session_cookie(ann))])
    with django_assert_num_queries(2):  # the session, the user
        assert scope["user"].pk == ann.pk


def test_a_session_from_before_a_password_change_is_anonymous():
    ann = UserFactory(username="ann")
    cookie = session_cookie(ann)
    ann.set_password("another secret")
    ann.save()
    scope, _ = through([cookie_header(cookie)])
    assert scope["user"].is_authenticated is False


def test_without_a_cookie_the_user_is_anonymous_without_a_query(django_assert_num_queries):
    scope, _ = through([])
    with django_assert_num_queries(0):
        assert scope["user"].is_authenticated is False
    assert isinstance(scope["user"]._wrapped, AnonymousUser)


def test_a_token_takes_the_place_of_the_session_user():
    ann, cat = UserFactory(username="ann"), UserFactory(username="cat")
    token = Token.objects.create(user=cat).key
    scope, _ = through([cookie_header(session_cookie(ann)), (b"authorization", f"Token {token}".encode())])
    assert scope["token_key"] == token
    assert scope["user"].pk == cat.pk
