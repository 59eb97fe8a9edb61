"""Password reset with Django's views: the link by email (console backend by default), then a new password."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db


def test_signup_takes_an_optional_email_for_password_resets(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "maud",
            "email": "maud@example.org",
            "password1": "harbour-42-x",
            "password2": "harbour-42-x",
        },
    )
    assert response.status_code == 302
    assert get_user_model().objects.get(username="maud").email == "maud@example.org"


def test_a_player_resets_a_forgotten_password_with_the_emailed_link(user_factory, client):
    user_factory(username="ann", email="ann@example.org")
    assert "Forgot your password?" in client.get("/accounts/login/").content.decode()

    sent = client.post("/accounts/password_reset/", {"email": "ann@example.org"}, follow=True)

    assert "Check your email" in sent.content.decode()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ann@example.org"]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "new-harbour-42", "new_password2": "new-harbour-42"},
        follow=True,
    )
    assert "Password set" in done.content.decode()
    assert Client().login(username="ann", password="new-harbour-42")


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.org"}, follow=True)
    assert "Check your email" in response.content.decode()
    assert mail.outbox == []


def test_a_bad_link_says_so(client):
    assert "This link does not work" in client.get("/accounts/reset/MQ/bad-token/").content.decode()
