"""Guessing a password in a real browser: after five wrong ones the login answers with the
site's own page saying how long to wait, and the right password does not get through
until then. Its own user, so the other tests' logins are not locked out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD

Shot = Callable[[Page, str], Path]


def try_password(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_too_many_wrong_passwords_lock_the_login_with_the_sites_page(
    page: Page, manage_shell: Callable[[str], None], shot: Shot
) -> None:
    manage_shell(
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('guessed', password={PASSWORD!r})"
    )
    for _ in range(4):
        try_password(page, "guessed", "wrong-guess")
        expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username")
    try_password(page, "guessed", "wrong-guess")
    expect(page.get_by_role("heading", name="Too many failed attempts")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(
        "Too many failed login attempts for guessed from your address. Try again in 15 minutes."
    )
    expect(page.get_by_role("link", name="labmgr dashboard")).to_be_visible()  # site layout
    shot(page, "locked-out")
    try_password(page, "guessed", PASSWORD)
    expect(page.get_by_role("heading", name="Too many failed attempts")).to_be_visible()
    page.goto("/")
    page.wait_for_url("**/login/?next=/")
