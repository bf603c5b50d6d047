"""A short reservation lived through in a real browser against the whole stack: alice
books two minutes of the host on the calendar page, charlie sees them busy and cannot book
over them, alice deploys inside them, the lab page warns her before the end (the stack's
beat ticks every 2 s and warns 45 s before), and at the end the beat closes the booking
and takes the lab down, leaving nothing in the kernel."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import Page, expect

from tests.system.conftest import Stack, book_the_host, wait_for
from tests.system.test_browser_lab import deploy_from_the_page, lab_id
from tests.system.test_live_deployments import TWO_NODES, kernel_objects, lab_from

Shot = Callable[[Any, str], Path]
BrowserFor = Callable[[str], Page]
FORM_TIME = "%Y-%m-%dT%H:%M"  # the booking form's datetime-local, in minutes


def holding(stack: Stack, who: str) -> list[dict[str, Any]]:
    """`who`'s bookings that still hold the host (scheduled or active)."""
    found = stack.get(who, "/api/reservations/").json()["results"]
    return [r for r in found if r["owner"] == who and r["status"] in ("scheduled", "active")]


def cancel_bookings(stack: Stack, who: str) -> None:
    for reservation in holding(stack, who):
        response = requests.delete(
            f"{stack.base}/api/reservations/{reservation['id']}/",
            headers=stack.auth(who),
            timeout=30,
        )
        assert response.status_code == 204, response.text


@pytest.fixture
def host_free_for_alice(stack: Stack) -> Iterator[None]:
    """The stack books the host whole for alice for its whole run; this test books its own
    short slot, so that booking steps aside, and comes back afterwards for the next tests."""
    cancel_bookings(stack, "alice")
    time.sleep(5)  # the beat (every 2 s) ends the cancelled booking before the test's own
    yield
    cancel_bookings(stack, "alice")
    book_the_host(stack, "alice")


def slot_of_two_minutes() -> tuple[datetime, datetime]:
    """From the current minute to two minutes later, within one day (one block in the
    week). The form speaks in minutes and a start may be at most a minute old, so a start
    late in its minute waits for the next one."""
    while True:
        now = datetime.now(UTC)
        start = now.replace(second=0, microsecond=0)
        end = start + timedelta(minutes=2)
        if now.second < 40 and end.date() == start.date():
            return start, end
        time.sleep(61 - now.second)


def fill_slot(page: Page, start: datetime, end: datetime) -> None:
    page.locator("#booking-form [name=start]").fill(start.strftime(FORM_TIME))
    page.locator("#booking-form [name=end]").fill(end.strftime(FORM_TIME))
    page.locator("#booking-form [name=whole_host]").check()


def test_a_short_booking_warns_before_its_end_and_takes_the_lab_down_at_the_end(
    stack: Stack, browser_for: BrowserFor, shot: Shot, host_free_for_alice: None
) -> None:
    page = browser_for("alice")
    page.get_by_role("link", name="Calendar", exact=True).click()
    expect(page.get_by_role("heading", name=f"Calendar of {stack.host}")).to_be_visible()
    calendar_url = page.url
    start, end = slot_of_two_minutes()
    day = start.strftime("%Y-%m-%d")
    fill_slot(page, start, end)
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_text(re.compile(rf"^Booked {stack.host} from .*\.$"))).to_be_visible()
    mine = page.locator(f'.day[data-day="{day}"] .block', has_text="My booking")
    expect(mine).to_have_count(1)
    shot(page, "calendar")
    [booking] = holding(stack, "alice")
    assert booking["status"] in ("scheduled", "active")
    assert booking["end"].replace("Z", "+00:00") == end.isoformat()

    # Another user sees the slot busy, without alice's name, and cannot book over it.
    other = browser_for("charlie")
    other.goto(calendar_url)
    busy = other.locator(f'.day[data-day="{day}"] .block')
    expect(busy).to_have_count(1)
    expect(busy).to_contain_text("Busy")
    expect(other.locator("#week")).not_to_contain_text("alice")
    fill_slot(other, start, end + timedelta(minutes=1))
    other.get_by_role("button", name="Book").click()
    slot = f"from {start:%Y-%m-%d %H:%M} UTC to {end:%Y-%m-%d %H:%M} UTC"
    expect(other.locator("#window-error")).to_have_text(
        f"Host {stack.host} is not free {slot}: it is booked whole. In the way: {slot}."
    )
    shot(other, "busy-for-others")
    assert holding(stack, "charlie") == []

    # Alice deploys inside her slot; the lab page warns her before the end.
    lab = lab_from(stack, TWO_NODES, "browser-short-slot")
    page.goto(f"/labs/{lab}/")
    assert lab_id(page) == lab
    expect(page.locator("#stream-state")).to_have_text("live")
    deployment, token = deploy_from_the_page(stack, page)
    expect(page.locator("#lab-status")).to_have_text("Running", timeout=60_000)
    notice = page.get_by_test_id("reservation-notice")
    expect(notice).to_be_hidden()
    left = (end - datetime.now(UTC)).total_seconds()
    assert left > 50, f"the deploy took too long: {left:.0f} s left of the slot"
    expect(notice).to_be_visible(timeout=int(left * 1000))
    expect(notice).to_have_text(
        re.compile(
            rf"^Your booking of {re.escape(stack.host)} ends in \d+ s \(at {end:%H:%M:%S}\): "
            r"your labs on it are destroyed then\."
        )
    )
    assert 30 < (end - datetime.now(UTC)).total_seconds() <= 46
    shot(page, "warned")

    # At the end the beat closes the booking and destroys the lab.
    expect(page.locator("#lab-status")).to_have_text("Destroyed", timeout=90_000)
    expect(notice).to_have_text(
        f"Your booking of {stack.host} has ended (closed); your labs on it are taken down."
    )
    assert datetime.now(UTC) >= end
    shot(page, "ended")
    assert stack.get("alice", f"/api/reservations/{booking['id']}/").json()["status"] == "closed"
    assert stack.get("alice", f"/api/deployments/{deployment}/").json()["status"] == "destroyed"
    wait_for(f"the kernel to hold nothing of {token}", lambda: not kernel_objects(token))
