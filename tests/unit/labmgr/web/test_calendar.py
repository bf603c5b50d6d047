"""The reservations calendar page and the dashboard's "My reservations" panel."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.test import Client

from labmgr.hosts.models import Host
from labmgr.reservations.models import Reservation
from labmgr.reservations.services import Share, reservation_book
from tests.unit.labmgr.reservations.helpers import Clock, at, share

# T0 is Monday 2030-01-07 09:00 UTC.
WEEK = "/calendar/{pk}/?week=2030-01-07"


def slot(start: float, end: float, **fields: str) -> dict[str, str]:
    """The booking form's fields for T0 + start hours to T0 + end hours (a share)."""
    return {
        "start": at(start).strftime("%Y-%m-%dT%H:%M"),
        "end": at(end).strftime("%Y-%m-%dT%H:%M"),
        "cpus": "1",
        "memory": "1G",
        "pids": "100",
        **fields,
    }


def text(response: object) -> str:
    return response.content.decode()  # type: ignore[attr-defined]


def blocks(page: str) -> list[str]:
    """The week's busy blocks as their visible text, e.g. "Busy 10:00\u201312:00 ..."."""
    found = re.findall(r'<div class="block [^"]*"[^>]*>(.*?)</div>', page, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", b).split()) for b in found]


def test_the_calendar_without_hosts_explains_the_wait(client: Client, alice: User) -> None:
    client.force_login(alice)
    page = text(client.get("/calendar/"))
    assert "No host to book yet." in page


def test_the_calendar_opens_on_the_first_host(client: Client, alice: User, server: Host) -> None:
    client.force_login(alice)
    response = client.get("/calendar/")
    assert response["Location"] == f"/calendar/{server.pk}/"


def test_the_calendar_asks_for_a_login(client: Client, server: Host) -> None:
    response = client.get(f"/calendar/{server.pk}/")
    assert response["Location"].startswith("/login/")


def test_a_booking_from_the_form_shows_in_its_week(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    client.force_login(alice)
    response = client.post(WEEK.format(pk=server.pk), slot(1, 3, whole_host="on"))
    assert response.status_code == 302
    assert response["Location"] == WEEK.format(pk=server.pk)
    booked = Reservation.objects.get()
    assert (booked.owner, booked.start, booked.end, booked.whole_host) == (
        alice,
        at(1),
        at(3),
        True,
    )
    page = text(client.get(response["Location"], follow=True))
    assert "Booked server from Mon 07 Jan 10:00 to Mon 07 Jan 12:00 UTC." in page
    assert blocks(page) == ["My booking 10:00\u201312:00 whole host"]


def test_others_see_my_booking_as_busy_without_my_name(
    client: Client, alice: User, charlie: User, server: Host, now: Clock
) -> None:
    reservation_book(actor=alice, host=server, start=at(1), end=at(3), share=share())
    client.force_login(charlie)
    page = text(client.get(WEEK.format(pk=server.pk)))
    assert blocks(page) == ["Busy 10:00\u201312:00 1 CPU · 1G · 100 processes"]
    assert "alice" not in page


def test_an_admin_sees_who_booked(
    client: Client, alice: User, root: User, server: Host, now: Clock
) -> None:
    reservation_book(actor=alice, host=server, start=at(1), end=at(3), share=share())
    client.force_login(root)
    page = text(client.get(WEEK.format(pk=server.pk)))
    assert blocks(page) == ["Booked by alice 10:00\u201312:00 1 CPU · 1G · 100 processes"]


def test_booking_over_a_busy_slot_names_the_window_under_the_times(
    client: Client, alice: User, charlie: User, server: Host, now: Clock
) -> None:
    reservation_book(actor=alice, host=server, start=at(1), end=at(3), share=Share(whole_host=True))
    client.force_login(charlie)
    response = client.post(WEEK.format(pk=server.pk), slot(2, 4))
    page = text(response)
    assert response.status_code == 400
    assert (
        '<p class="field-error" id="window-error" role="alert">Host server is not free from '
        "2030-01-07 11:00 UTC to 2030-01-07 12:00 UTC: it is booked whole. "
        "In the way: from 2030-01-07 10:00 UTC to 2030-01-07 12:00 UTC.</p>"
    ) in page
    assert re.search(r'name="start"[^>]*aria-invalid="true"', page)
    assert "Traceback" not in page
    assert Reservation.objects.filter(owner=charlie).count() == 0


def test_a_start_in_the_past_is_told_next_to_the_start(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    client.force_login(alice)
    page = text(client.post(WEEK.format(pk=server.pk), slot(-3, -1)))
    assert '<p class="field-error" id="start-error">The start is in the past.</p>' in page


def test_a_size_that_is_not_one_is_told_next_to_the_memory(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    client.force_login(alice)
    page = text(client.post(WEEK.format(pk=server.pk), slot(1, 2, memory="12Q")))
    error = re.search(r'<p class="field-error" id="memory-error">([^<]*)</p>', page)
    assert error and "12Q" in error.group(1)
    assert Reservation.objects.count() == 0


def test_a_share_larger_than_the_host_is_told_next_to_its_field(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    client.force_login(alice)
    page = text(client.post(WEEK.format(pk=server.pk), slot(1, 2, cpus="9")))
    assert "Host server has 4 of cpus; you asked for 9." in page
    assert 'id="cpus-error"' in page


def test_the_week_links_to_its_neighbours(client: Client, alice: User, server: Host) -> None:
    client.force_login(alice)
    page = text(client.get(f"/calendar/{server.pk}/?week=2030-01-09"))
    assert "Week of Mon 7 Jan 2030 \u2013 Sun 13 Jan" in page
    assert f"/calendar/{server.pk}/?week=2029-12-31" in page
    assert f"/calendar/{server.pk}/?week=2030-01-14" in page


def test_the_dashboard_counts_down_to_my_reservations(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    running = reservation_book(actor=alice, host=server, start=at(0), end=at(2), share=share())
    later = reservation_book(actor=alice, host=server, start=at(30), end=at(31), share=share())
    now.advance(minutes=30)
    client.force_login(alice)
    page = text(client.get("/"))
    assert "My reservations" in page
    assert f'data-reservation="{running.pk}"' in page
    assert 'data-countdown="2030-01-07T11:00:00+00:00" data-verb="Ends"' in page
    assert "Ends in 1\xa0hour, 30\xa0minutes" in page
    assert 'data-countdown="2030-01-08T15:00:00+00:00" data-verb="Starts"' in page
    assert f'data-reservation="{later.pk}"' in page


def test_the_dashboard_without_reservations_points_to_the_calendar(
    client: Client, alice: User, now: Clock
) -> None:
    client.force_login(alice)
    page = text(client.get("/"))
    assert "You have no reservation." in page
    assert 'href="/calendar/"' in page


def test_ended_reservations_leave_the_dashboard(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    reservation_book(actor=alice, host=server, start=at(0), end=at(1), share=share())
    now.advance(hours=1, seconds=1)
    client.force_login(alice)
    assert "You have no reservation." in text(client.get("/"))
