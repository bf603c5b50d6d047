"""Guessing passwords is throttled per user name and address: after
LABMGR_LOGIN_MAX_FAILURES failures the login page, the admin's login and POST /api/token
answer 429 with the site's page (or the API's error) saying when to try again; the right
password does not get through before then; a success before the limit starts the count
again; another user, or the same user from elsewhere, is not affected."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

PASSWORD = "alice-password"


@pytest.fixture(autouse=True)
def defaults(settings: Any) -> None:
    # The shipped defaults, whatever the environment running the tests says.
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = 900 / 3600


def log_in(client: Client, username: str, password: str, *, path: str = "/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


def fail(client: Client, times: int, *, username: str = "alice", path: str = "/login/") -> Any:
    response = None
    for _ in range(times):
        response = log_in(client, username, "wrong", path=path)
    return response


def test_a_few_wrong_passwords_are_only_wrong(client: Client, alice: User) -> None:
    response = fail(client, 4)
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert log_in(client, "alice", PASSWORD).status_code == 302


def test_the_fifth_failure_locks_the_user_out_with_the_sites_page(
    client: Client, alice: User
) -> None:
    response = fail(client, 5)
    assert response.status_code == 429
    page = response.content.decode()
    assert "<h1>Too many failed attempts</h1>" in page
    assert (
        "Too many failed login attempts for alice from your address. Try again in 15 minutes."
        in page
    )
    assert 'class="brand"' in page  # the site's layout, not a bare message
    assert 850 <= int(response["Retry-After"]) <= 900


def test_the_right_password_does_not_get_through_a_lockout(client: Client, alice: User) -> None:
    fail(client, 5)
    response = log_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # still asked to log in


def test_the_lockout_ends_after_the_cool_off(client: Client, alice: User) -> None:
    fail(client, 5)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert log_in(client, "alice", PASSWORD).status_code == 302


def test_the_page_says_how_long_is_left(client: Client, alice: User) -> None:
    fail(client, 5)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14, seconds=30))
    response = log_in(client, "alice", PASSWORD)
    assert "Try again in 30 seconds." in response.content.decode()


def test_a_success_starts_the_count_again(client: Client, alice: User) -> None:
    fail(client, 4)
    assert log_in(client, "alice", PASSWORD).status_code == 302
    client.logout()
    assert fail(client, 4).status_code == 200
    assert log_in(client, "alice", PASSWORD).status_code == 302


def test_others_are_not_locked_out(client: Client, alice: User, bob: User) -> None:
    fail(client, 5)
    assert log_in(client, "bob", "bob-password").status_code == 302
    elsewhere = Client(REMOTE_ADDR="192.0.2.77")
    assert log_in(elsewhere, "alice", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(client: Client, root: User) -> None:
    response = fail(client, 5, username="root", path="/admin/login/")
    assert response.status_code == 429
    assert "Too many failed login attempts for root" in response.content.decode()
    assert log_in(client, "root", "root-password", path="/admin/login/").status_code == 429


def test_the_limits_come_from_the_settings(client: Client, alice: User, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = 120 / 3600
    response = fail(client, 2)
    assert response.status_code == 429
    assert "Try again in 2 minutes." in response.content.decode()


def test_the_api_login_answers_429_in_the_apis_shape(client: Client, alice: User) -> None:
    for _ in range(4):
        response = client.post(
            "/api/token",
            {"username": "alice", "password": "wrong"},
            content_type="application/json",
        )
        assert response.status_code == 401
        assert response.json() == {"detail": "The user name or password is wrong.", "errors": {}}
    response = client.post(
        "/api/token", {"username": "alice", "password": "wrong"}, content_type="application/json"
    )
    assert response.status_code == 429
    assert response.json() == {
        "detail": "Too many failed login attempts for alice from your address. "
        "Try again in 15 minutes.",
        "errors": {},
    }
    response = client.post(
        "/api/token", {"username": "alice", "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 429
    assert "token" not in response.json()
