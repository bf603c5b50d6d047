"""Every page, the admin's too, is drawn in the browser's time zone (the `tz` cookie its
script keeps); a posted form is read in the zone it was drawn in; the API keeps UTC
whatever the cookie says."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from labmgr.hosts.models import Host
from labmgr.reservations.models import Reservation
from labmgr.reservations.services import reservation_book
from labmgr.web.timezones import zone_named
from tests.unit.labmgr.reservations.helpers import Clock, at, share


@pytest.fixture
def booking(alice: User, server: Host, now: Clock) -> Reservation:
    # 10:00-11:00 UTC on Monday 7 January 2030: 11:00-12:00 in Paris.
    return reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())


@pytest.mark.parametrize("name", ["", "Etc/UTC", "Nowhere/Atlantis", "../../etc/passwd"])
def test_unknown_or_utc_zone_names_are_shown_as_utc(name: str) -> None:
    assert zone_named(name) == ("UTC", UTC)


def test_the_admin_shows_times_in_the_browsers_zone(
    client: Client, root: User, booking: Reservation
) -> None:
    client.force_login(root)
    url = "/admin/reservations/reservation/"
    assert "Jan. 7, 2030, 10 a.m." in client.get(url).content.decode()
    client.cookies["tz"] = "Europe/Paris"
    page = client.get(url).content.decode()
    assert "Jan. 7, 2030, 11 a.m." in page
    assert "Jan. 7, 2030, 10 a.m." not in page


def test_the_api_keeps_utc_whatever_the_browsers_zone(
    client: Client, alice: User, booking: Reservation
) -> None:
    client.force_login(alice)
    client.cookies["tz"] = "Europe/Paris"
    (row,) = client.get("/api/reservations/").json()["results"]
    assert (row["start"], row["end"]) == ("2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z")


def test_a_form_is_read_in_the_zone_it_was_drawn_in_not_the_cookies(
    client: Client, alice: User, booking: Reservation
) -> None:
    client.force_login(alice)
    client.cookies["tz"] = "America/New_York"
    response = client.post(
        f"/calendar/reservations/{booking.pk}/",
        {"action": "extend", "end": "2030-01-07T13:00", "tz": "Europe/Paris"},
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.end == at(3)  # 13:00 in Paris, 12:00 UTC


def test_the_zone_ends_with_its_request(client: Client, alice: User, booking: Reservation) -> None:
    client.force_login(alice)
    client.cookies["tz"] = "Asia/Tokyo"
    assert "From (Asia/Tokyo)" in client.get("/").content.decode()
    assert timezone.get_current_timezone_name() == "UTC"
