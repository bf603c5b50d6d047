"""API tokens expire LABMGR_API_TOKEN_TTL after they were issued: an expired one is a 401
saying when it expired; POST /api/token trades a user name and password for a fresh one
(the old one stops working); DELETE /api/token revokes it; an admin revokes anyone's in
the admin; 0 keeps tokens for ever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

DAY = 86400


@pytest.fixture(autouse=True)
def thirty_days(settings: Any) -> None:
    settings.LABMGR_API_TOKEN_TTL = 30 * DAY


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def issued_ago(user: User, age: timedelta) -> Token:
    token = Token.objects.create(user=user)
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - age)
    token.refresh_from_db()
    return token


def test_a_fresh_token_works(alice: User) -> None:
    token = issued_ago(alice, timedelta(days=29))
    assert with_token(token.key).get("/api/labs/").status_code == 200


def test_an_expired_token_is_refused_saying_when_it_expired(alice: User) -> None:
    token = issued_ago(alice, timedelta(days=31))
    expired_on = (token.created + timedelta(days=30)).strftime("%Y-%m-%d %H:%M UTC")
    response = with_token(token.key).get("/api/labs/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "detail": f"The token expired on {expired_on}. Get a fresh one with POST /api/token "
        "(user name and password), or ask an admin.",
        "errors": {},
    }


def test_an_expired_token_cannot_write_either(alice: User, alice_lab: Any) -> None:
    token = issued_ago(alice, timedelta(days=31))
    response = with_token(token.key).delete(f"/api/labs/{alice_lab.pk}/")
    assert response.status_code == 401
    assert alice_lab.__class__.objects.filter(pk=alice_lab.pk).exists()


def test_a_ttl_of_zero_keeps_tokens_for_ever(alice: User, settings: Any) -> None:
    settings.LABMGR_API_TOKEN_TTL = 0
    token = issued_ago(alice, timedelta(days=3650))
    assert with_token(token.key).get("/api/labs/").status_code == 200


def test_a_user_trades_a_password_for_a_fresh_token(alice: User) -> None:
    old = issued_ago(alice, timedelta(days=31))
    # Even with the expired token still in the header.
    response = with_token(old.key).post(
        "/api/token", {"username": "alice", "password": "alice-password"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token"] != old.key
    expires = timezone.datetime.fromisoformat(body["expires"])
    assert abs(expires - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert with_token(body["token"]).get("/api/labs/").status_code == 200
    assert with_token(old.key).get("/api/labs/").status_code == 401


def test_a_wrong_password_gets_no_token(alice: User) -> None:
    response = APIClient().post(
        "/api/token", {"username": "alice", "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    assert not Token.objects.filter(user=alice).exists()


def test_the_api_login_names_missing_fields(alice: User) -> None:
    response = APIClient().post("/api/token", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"password": ["This field is required."]}


def test_a_user_revokes_their_token(alice: User) -> None:
    token = Token.objects.create(user=alice)
    assert with_token(token.key).delete("/api/token").status_code == 204
    assert with_token(token.key).get("/api/labs/").status_code == 401


def test_an_admin_revokes_a_users_token_in_the_admin(alice: User, root: User) -> None:
    token = Token.objects.create(user=alice)
    admin = Client()
    admin.force_login(root)
    response = admin.post(
        f"/admin/authtoken/tokenproxy/{token.user_id}/delete/", {"post": "yes"}, follow=True
    )
    assert response.status_code == 200
    response = with_token(token.key).get("/api/labs/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."
