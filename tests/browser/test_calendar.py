"""The reservations calendar in a real browser: one user books a slot with the form and
sees it in the week; another sees that slot as busy, without the name, and is told the
window in the way when booking over it. The dashboard counts down to the booking. A slot
is booked by dragging over the week; an extension over another's booking is refused
with the window in the way; a cancel asks first; times follow the browser's zone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD

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


def _midnight_in(days: int) -> datetime:
    """00:00 UTC, `days` days from today."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days)


def _week_of(page: Page, day: datetime) -> str:
    """Open the calendar on the week holding `day`; returns the page's URL."""
    page.get_by_role("link", name="Calendar", exact=True).click()
    page.goto(page.url.split("?")[0] + f"?week={day:%Y-%m-%d}")
    return page.url


def _drag(page: Page, day: datetime, from_hour: float, to_hour: float) -> None:
    body = page.locator(f'.day[data-day="{day:%Y-%m-%d}"] .day-body')
    box = body.bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    y = lambda hour: box["y"] + box["height"] * hour / 24 + 2  # noqa: E731
    page.mouse.move(x, y(from_hour))
    page.mouse.down()
    page.mouse.move(x, y((from_hour + to_hour) / 2), steps=4)
    page.mouse.move(x, y(to_hour), steps=4)
    page.mouse.up()


def test_dragging_down_a_day_fills_the_form_and_books_that_slot(
    login: Login, shot: Shot, host: str
) -> None:
    day = _midnight_in(2)
    page = login("alice")
    _week_of(page, day)
    _drag(page, day, 14, 15.5)  # the slot under the pointer is included: up to 16:00
    expect(page.get_by_label("Start (UTC)")).to_have_value(f"{day:%Y-%m-%d}T14:00")
    expect(page.get_by_label("End (UTC)")).to_have_value(f"{day:%Y-%m-%d}T16:00")
    expect(page.locator(".selection")).to_have_count(1)
    expect(page.get_by_role("button", name="Book", exact=True)).to_be_focused()
    shot(page, "dragged")
    page.get_by_role("button", name="Book", exact=True).click()
    mine = page.locator(f'.day[data-day="{day:%Y-%m-%d}"] .block.mine')
    expect(mine).to_contain_text("14:00\u201316:00")
    expect(page.locator("#my-bookings li")).to_have_count(1)
    shot(page, "booked")


def test_an_extension_over_anothers_booking_is_refused_with_its_window(
    login: Login, shot: Shot, host: str, manage_shell: Callable[[str], None]
) -> None:
    day = _midnight_in(3)
    d = f"{day:%Y-%m-%d}"
    manage_shell(
        "from datetime import datetime; from django.contrib.auth.models import User; "
        "from labmgr.hosts.models import Host; "
        "from labmgr.reservations.services import Share, reservation_book; "
        f"day = datetime.fromisoformat('{d}T00:00+00:00'); "
        "from datetime import timedelta as h; "
        "reservation_book(actor=User.objects.get(username='dave'), "
        f"host=Host.objects.get(name={host!r}), start=day + h(hours=11), "
        "end=day + h(hours=12), share=Share(whole_host=True))"
    )
    page = login("carol")
    _week_of(page, day)
    _fill_slot(page, day + timedelta(hours=9), day + timedelta(hours=10))
    page.get_by_role("button", name="Book", exact=True).click()
    booking = page.locator("#my-bookings li")
    expect(booking).to_have_count(1)

    booking.get_by_label("New end time (UTC)").fill(f"{d}T12:00")
    booking.get_by_role("button", name="Extend").click()
    expect(page.locator(".messages")).to_have_text(
        f"Host {host} is not free from {d} 11:00 UTC to {d} 12:00 UTC: it is booked whole. "
        f"In the way: from {d} 11:00 UTC to {d} 12:00 UTC. It can be extended until {d} 11:00 UTC."
    )
    expect(page.locator(f'.day[data-day="{d}"] .block.mine')).to_contain_text("09:00\u201310:00")
    shot(page, "refused")

    page.locator("#my-bookings li").get_by_label("New end time (UTC)").fill(f"{d}T11:00")
    page.locator("#my-bookings li").get_by_role("button", name="Extend").click()
    expect(page.locator(".messages")).to_contain_text("Extended the booking of")
    expect(page.locator(f'.day[data-day="{d}"] .block.mine')).to_contain_text("09:00\u201311:00")


def test_cancelling_a_booking_asks_first_then_frees_the_slot(
    login: Login, shot: Shot, host: str
) -> None:
    day = _midnight_in(4)
    d = f"{day:%Y-%m-%d}"
    page = login("erin")
    _week_of(page, day)
    _fill_slot(page, day + timedelta(hours=15), day + timedelta(hours=16))
    page.get_by_role("button", name="Book", exact=True).click()
    mine = page.locator(f'.day[data-day="{d}"] .block.mine')
    expect(mine).to_have_count(1)

    booking = page.locator("#my-bookings li")
    booking.get_by_role("button", name="Cancel reservation").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Cancel your booking of {host} from")
    shot(page, "confirm")
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    expect(mine).to_have_count(1)

    booking.get_by_role("button", name="Cancel reservation").click()
    dialog.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator(".messages")).to_contain_text(f"Cancelled the booking of {host}")
    expect(mine).to_have_count(0)
    expect(page.locator("#my-bookings")).to_contain_text("No booking of")


def test_the_calendar_speaks_the_browsers_time_zone_with_utc_on_hover(
    browser: Browser, live_server_url: str, host: str
) -> None:
    zone = ZoneInfo("America/Sao_Paulo")  # no summer time: one offset all year
    day = _midnight_in(5)
    context = browser.new_context(base_url=live_server_url, timezone_id="America/Sao_Paulo")
    try:
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")
        start = (day + timedelta(hours=15)).astimezone(zone)
        _week_of(page, start)
        # The page is redrawn once in the browser's zone.
        expect(page.get_by_label("Start (America/Sao_Paulo)")).to_be_visible()
        page.get_by_label("Start (America/Sao_Paulo)").fill(f"{start:%Y-%m-%dT%H:%M}")
        end = start + timedelta(hours=1)
        page.get_by_label("End (America/Sao_Paulo)").fill(f"{end:%Y-%m-%dT%H:%M}")
        page.get_by_label("The whole host").check()
        page.get_by_role("button", name="Book", exact=True).click()
        block = page.locator(f'.day[data-day="{start:%Y-%m-%d}"] .block.mine')
        expect(block).to_contain_text(f"{start:%H:%M}\u2013{end:%H:%M}")
        utc = day + timedelta(hours=15)
        expect(block).to_have_attribute("title", re.compile(rf"\(UTC: .* {utc:%H:%M}\u2013"))
        page.get_by_role("link", name="Dashboard", exact=True).click()
        when = page.locator(f'#my-reservations td > time[datetime="{utc.isoformat()}"]')
        expect(when).to_have_attribute("title", re.compile(rf"{utc:%H:%M} UTC$"))
        expect(when).to_contain_text(f"{start:%H:%M}")
    finally:
        context.close()


def test_my_reservations_on_the_dashboard_can_be_shortened_and_cancelled(
    login: Login, shot: Shot, host: str, manage_shell: Callable[[str], None]
) -> None:
    start = _midnight_in(6) + timedelta(hours=8)
    manage_shell(
        "from datetime import datetime, timedelta; from django.contrib.auth.models import User; "
        "from labmgr.hosts.models import Host; "
        "from labmgr.reservations.services import Share, reservation_book; "
        f"start = datetime.fromisoformat({start.isoformat()!r}); "
        "reservation_book(actor=User.objects.get(username='dave'), "
        f"host=Host.objects.get(name={host!r}), start=start, end=start + timedelta(hours=3), "
        "share=Share(whole_host=True))"
    )
    page = login("dave")
    row = page.locator(
        "#my-reservations tr", has=page.locator(f'td > time[datetime="{start.isoformat()}"]')
    )
    new_end = start + timedelta(hours=1)
    row.get_by_text("Change or cancel").click()
    row.get_by_label("New end time (UTC)").fill(f"{new_end:%Y-%m-%dT%H:%M}")
    row.get_by_role("button", name="Shorten").click()
    expect(page.locator(".messages")).to_contain_text(
        f"Shortened the booking of {host}: it now ends {new_end:%a %d %b %H:%M} UTC."
    )
    expect(row.locator("td > time").nth(1)).to_have_text(f"{new_end:%a %-d %b %H:%M}")

    row.get_by_text("Change or cancel").click()
    row.get_by_role("button", name="Cancel reservation").click()
    page.get_by_role("dialog").get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator(".messages")).to_contain_text(f"Cancelled the booking of {host}")
    expect(row).to_have_count(0)
    shot(page, "cancelled")
