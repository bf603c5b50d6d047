"""The dashboard: labs with their status, hosts, recent deployments, empty states."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from labmgr.labs.models import Lab


def test_the_root_asks_for_a_login_on_our_login_page(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_the_login_page_logs_a_user_in(client: Client, alice: User) -> None:
    page = client.get("/login/")
    assert "Log in to labmgr" in page.content.decode()
    response = client.post("/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_a_wrong_password_is_a_sentence(client: Client, alice: User) -> None:
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert "Please enter a correct username and password" in response.content.decode()


def test_an_empty_dashboard_explains_what_to_do(client: Client, alice: User) -> None:
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "You have no labs yet." in page
    assert "No host has registered yet." in page
    assert "Nothing deployed yet." in page
    assert 'href="/examples/"' in page


def test_the_dashboard_lists_my_labs_and_not_others(
    client: Client, alice_lab: Lab, charlie: User
) -> None:
    client.force_login(alice_lab.owner)
    assert "Not deployed" in client.get("/").content.decode()
    client.force_login(charlie)
    assert f'href="/labs/{alice_lab.pk}/"' not in client.get("/").content.decode()


def test_the_status_feed_names_each_labs_status(client: Client, alice_lab: Lab) -> None:
    client.force_login(alice_lab.owner)
    body = client.get("/status.json").json()
    assert body["labs"][str(alice_lab.pk)] == {"status": "", "label": "Not deployed"}


def test_logging_out_returns_to_the_login_page(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
