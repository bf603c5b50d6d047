"""The reservations calendar in a real browser: one user books a slot with the form and
sees it in the week; another sees that slot as busy, without the name, and is told the
window in the way when booking over it. The dashboard counts down to the booking."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

Shot = Callable[[Page, str], Path]
Login = Callable[[str], Page]
HOST = "lab-server"


@pytest.fixture(scope="module")
def host(live_server_url: str, manage_shell: Callable[[str], None]) -> Iterator[str]:
    """A host with capacity in the live server's database (no agent runs here); gone
    afterwards, with its bookings, so the other pages' tests still find no host."""
    manage_shell(
        "from labmgr.hosts.models import Host; "
        f"Host.objects.get_or_create(name={HOST!r}, defaults=dict(slug={HOST!r}, "
        "status='online', cpus=4, memory=8 * 2**30, pids=1000))",
    )
    yield HOST
    manage_shell(
        "from labmgr.reservations.models import Reservation; "
        "from labmgr.hosts.models import Host; "
        f"Reservation.objects.filter(host__name={HOST!r}).delete(); "
        f"Host.objects.filter(name={HOST!r}).delete()",
    )


def _fill_slot(page: Page, start: datetime, end: datetime) -> None:
    page.get_by_label("Start (UTC)").fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("End (UTC)").fill(end.strftime("%Y-%m-%dT%H:%M"))


def _log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")


def test_a_booked_slot_is_busy_for_others_who_are_told_the_window(
    login: Login, shot: Shot, host: str
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    day = tomorrow.strftime("%Y-%m-%d")

    page = login("bob")
    page.get_by_role("link", name="Calendar", exact=True).click()
    expect(page.get_by_role("heading", name=f"Calendar of {host}")).to_be_visible()
    _fill_slot(page, tomorrow, tomorrow + timedelta(hours=2))
    page.get_by_label("The whole host").check()
    expect(page.get_by_label("CPUs")).to_be_disabled()
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_text(re.compile(rf"^Booked {host} from .* 10:00 to .* 12:00 UTC\.$")))
    mine = page.locator(f'.day[data-day="{day}"] .block')
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("My booking")
    expect(mine).to_contain_text("10:00\u201312:00")
    week_url = page.url
    shot(page, "booked")

    page.get_by_role("link", name="Dashboard", exact=True).click()
    countdown = page.locator("#my-reservations .countdown")
    expect(countdown).to_have_text(re.compile(r"^Starts in .+"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3000)  # it ticks
    shot(page, "dashboard")
    _log_out(page)

    login("erin")
    page.goto(week_url)
    busy = page.locator(f'.day[data-day="{day}"] .block')
    expect(busy).to_have_count(1)
    expect(busy).to_contain_text("Busy")
    expect(busy).to_contain_text("10:00\u201312:00")
    expect(page.locator("#week")).not_to_contain_text("bob")

    _fill_slot(page, tomorrow + timedelta(hours=1), tomorrow + timedelta(hours=3))
    page.get_by_role("button", name="Book").click()
    error = page.locator("#window-error")
    expect(error).to_have_text(
        f"Host {host} is not free from {day} 11:00 UTC to {day} 12:00 UTC: it is booked "
        f"whole. In the way: from {day} 10:00 UTC to {day} 12:00 UTC."
    )
    expect(page.get_by_label("Start (UTC)")).to_have_attribute("aria-invalid", "true")
    # The form keeps what was typed, to change it.
    expect(page.get_by_label("End (UTC)")).to_have_value(
        (tomorrow + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    )
    expect(page.locator(f'.day[data-day="{day}"] .block')).to_have_count(1)
    shot(page, "conflict")
