"""Sign-up, the throttled login page, logout and the profile with the API token."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_signup_creates_the_user_logs_in_and_redirects_to_the_hunts(client):
    assert client.get(reverse("accounts:signup")).status_code == 200

    response = client.post(
        reverse("accounts:signup"),
        {"username": "ann", "password1": "harbour-lights-42", "password2": "harbour-lights-42"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("hunts:list")
    page = client.get(response["Location"])
    assert page.context["user"].get_username() == "ann"
    assert "Welcome, ann! Pick a hunt to join." in messages_of(page)


def test_signup_goes_back_to_the_page_that_asked(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "ann",
            "password1": "harbour-lights-42",
            "password2": "harbour-lights-42",
            "next": "/hunts/x/",
        },
    )

    assert response["Location"] == "/hunts/x/"


def test_signup_ignores_an_offsite_next(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "ann",
            "password1": "harbour-lights-42",
            "password2": "harbour-lights-42",
            "next": "https://evil.example/",
        },
    )

    assert response["Location"] == reverse("hunts:list")


def test_signup_errors_are_shown_on_their_fields(client, user_factory):
    user_factory(username="ann")

    response = client.post(
        reverse("accounts:signup"), {"username": "ann", "password1": "short", "password2": "other"}
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["username"] == ["A user with that username already exists."]
    assert errors["password2"] == ["The two password fields didn’t match."]
    html = response.content.decode()
    assert 'aria-invalid="true"' in html
    assert 'for="id_username"' in html


def test_login_page_logs_in_and_logout_is_a_post(client, user_factory):
    user_factory(username="ann", password="pw-123-secret")
    assert client.get(reverse("login")).status_code == 200

    response = client.post(reverse("login"), {"username": "ann", "password": "pw-123-secret"})

    assert response.status_code == 302
    assert client.get(reverse("hunts:list")).context["user"].is_authenticated
    assert client.get(reverse("logout")).status_code == 405
    client.post(reverse("logout"))
    assert not client.get(reverse("hunts:list")).context["user"].is_authenticated


def test_failed_logins_are_throttled_like_the_token_endpoint(client, user_factory, settings):
    settings.LOGIN_FAILURES_PER_PAIR = 3
    user_factory(username="ann", password="pw-123-secret")
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "ann", "password": "wrong"})
        assert response.status_code == 200
        assert response.context["form"].non_field_errors()

    response = client.post(reverse("login"), {"username": "ann", "password": "pw-123-secret"})

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    [message] = messages_of(response)
    assert message.startswith("Too many failed sign-in attempts; try again in ")
    assert not client.get(reverse("hunts:list")).context["user"].is_authenticated
    assert 'value="ann"' in response.content.decode()


def test_profile_needs_a_login(client):
    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_profile_creates_and_regenerates_the_api_token(client, user_factory, monkeypatch):
    ended = []
    monkeypatch.setattr("accounts.services.end_user_sessions", ended.append)
    user = user_factory(username="ann")
    client.force_login(user)
    assert "You have no API token yet." in client.get(reverse("accounts:profile")).content.decode()

    response = client.post(reverse("accounts:token_create"))
    assert response.status_code == 302
    key = Token.objects.get(user=user).key
    assert key in client.get(reverse("accounts:profile")).content.decode()

    client.post(reverse("accounts:token_regenerate"))
    assert ended == [user.pk]  # sockets opened with the old token are closed
    new_key = Token.objects.get(user=user).key
    assert new_key != key
    page = client.get(reverse("accounts:profile")).content.decode()
    assert new_key in page and key not in page


def test_token_forms_are_post_only(client, user_factory):
    client.force_login(user_factory())

    assert client.get(reverse("accounts:token_create")).status_code == 405
    assert client.get(reverse("accounts:token_regenerate")).status_code == 405
    assert get_user_model().objects.count() == 1 and not Token.objects.exists()
