"""Acting on one's bookings from the calendar and the dashboard (extend, shorten, cancel
with a confirmation), and pages drawn in the browser's time zone."""

from __future__ import annotations

import re
from datetime import datetime

from django.contrib.auth.models import User
from django.test import Client

from labmgr.accounts.services import classroom_create
from labmgr.hosts.models import Host
from labmgr.reservations.models import Reservation
from labmgr.reservations.services import reservation_book
from tests.unit.labmgr.reservations.helpers import WHOLE, Clock, at, share

WEEK = "/calendar/{pk}/?week=2030-01-07"
ACTION = "/calendar/reservations/{pk}/"


def form_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def messages_of(client: Client, url: str) -> list[str]:
    page = client.get(url).content.decode()
    return re.findall(r'<p class="message [^"]*">(.*?)</p>', page, re.S)


def test_the_owner_extends_her_booking_to_a_chosen_end(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    mine = reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())
    client.force_login(alice)
    response = client.post(
        ACTION.format(pk=mine.pk),
        {"action": "extend", "end": form_time(at(4)), "next": WEEK.format(pk=server.pk)},
    )
    assert response["Location"] == WEEK.format(pk=server.pk)
    mine.refresh_from_db()
    assert mine.end == at(4)
    assert messages_of(client, response["Location"]) == [
        "Extended the booking of server: it now ends Mon 07 Jan 13:00 UTC."
    ]


def test_an_extension_over_anothers_booking_names_the_window_and_how_far_it_can_go(
    client: Client, alice: User, charlie: User, server: Host, now: Clock
) -> None:
    mine = reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())
    reservation_book(actor=charlie, host=server, start=at(3), end=at(5), share=WHOLE)
    client.force_login(alice)
    response = client.post(ACTION.format(pk=mine.pk), {"action": "extend", "end": form_time(at(4))})
    mine.refresh_from_db()
    assert mine.end == at(2)
    assert messages_of(client, response["Location"]) == [
        "Host server is not free from 2030-01-07 12:00 UTC to 2030-01-07 13:00 UTC: it is "
        "booked whole. In the way: from 2030-01-07 12:00 UTC to 2030-01-07 14:00 UTC. "
        "It can be extended until 2030-01-07 12:00 UTC."
    ]


def test_the_owner_shortens_her_booking_but_not_past_its_start(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    mine = reservation_book(actor=alice, host=server, start=at(1), end=at(3), share=share())
    client.force_login(alice)
    response = client.post(
        ACTION.format(pk=mine.pk), {"action": "shorten", "end": form_time(at(2))}
    )
    assert messages_of(client, response["Location"]) == [
        "Shortened the booking of server: it now ends Mon 07 Jan 11:00 UTC."
    ]
    response = client.post(
        ACTION.format(pk=mine.pk), {"action": "shorten", "end": form_time(at(0.5))}
    )
    assert messages_of(client, response["Location"]) == [
        "The end must come after the start and after now; cancel it instead."
    ]
    mine.refresh_from_db()
    assert mine.end == at(2)


def test_cancelling_without_confirming_asks_first_on_the_calendar(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    mine = reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())
    client.force_login(alice)
    response = client.post(ACTION.format(pk=mine.pk), {"action": "cancel"})
    assert response["Location"] == f"/calendar/{server.pk}/?week=2030-01-07&cancel={mine.pk}"
    mine.refresh_from_db()
    assert mine.status == "scheduled"
    page = client.get(response["Location"]).content.decode()
    assert "Cancel this booking of server?" in page
    assert "Yes, cancel the reservation" in page

    client.post(ACTION.format(pk=mine.pk), {"action": "cancel", "confirmed": "on"})
    mine.refresh_from_db()
    assert mine.status == "cancelled"


def test_a_stranger_cannot_know_the_booking_and_a_teacher_may_not_change_it(
    client: Client, alice: User, bob: User, charlie: User, server: Host, now: Clock
) -> None:
    mine = reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())
    classroom_create(name="net-101", teacher=bob, members=[alice])
    cancel = {"action": "cancel", "confirmed": "on"}
    client.force_login(charlie)
    assert client.post(ACTION.format(pk=mine.pk), cancel).status_code == 404
    client.force_login(bob)
    refused = client.post(ACTION.format(pk=mine.pk), cancel)
    assert refused.status_code == 403
    assert "Only the booking&#x27;s owner or an admin may change it." in refused.content.decode()
    mine.refresh_from_db()
    assert mine.status == "scheduled"


def test_a_redirect_elsewhere_is_not_followed(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    mine = reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())
    client.force_login(alice)
    response = client.post(
        ACTION.format(pk=mine.pk),
        {"action": "extend", "end": form_time(at(3)), "next": "https://evil.example/"},
    )
    assert response["Location"] == WEEK.format(pk=server.pk)


def test_the_dashboard_offers_the_actions_on_my_reservations(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    mine = reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert f'action="/calendar/reservations/{mine.pk}/"' in page
    assert 'value="2030-01-07T11:00"' in page  # the new end starts at the current one
    assert "Cancel reservation" in page


def test_the_calendar_is_drawn_in_the_browsers_zone_with_utc_on_hover(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    reservation_book(actor=alice, host=server, start=at(1), end=at(3), share=share())
    client.force_login(alice)
    client.cookies["tz"] = "Europe/Paris"
    page = client.get(WEEK.format(pk=server.pk)).content.decode()
    assert "Start (Europe/Paris)" in page
    assert 'data-zone="Europe/Paris"' in page
    # 10:00-12:00 UTC is 11:00-13:00 in Paris in January.
    assert "11:00\u201313:00" in page
    assert "(UTC: Mon 7 Jan 10:00\u2013Mon 7 Jan 12:00)" in page


def test_a_booking_typed_in_local_time_is_stored_in_utc(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    client.force_login(alice)
    response = client.post(
        WEEK.format(pk=server.pk),
        {
            "start": "2030-01-07T11:00",
            "end": "2030-01-07T12:30",
            "tz": "Europe/Paris",
            "whole_host": "on",
        },
    )
    assert response.status_code == 302
    booked = Reservation.objects.get()
    assert (booked.start, booked.end) == (at(1), at(2.5))
    assert messages_of(client, response["Location"]) == [
        "Booked server from Mon 07 Jan 11:00 to Mon 07 Jan 12:30 Europe/Paris."
    ]


def test_the_dashboard_shows_local_times_with_utc_in_the_title(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    reservation_book(actor=alice, host=server, start=at(1), end=at(2), share=share())
    client.force_login(alice)
    client.cookies["tz"] = "America/New_York"
    page = client.get("/").content.decode()
    assert 'title="Mon 7 Jan 10:00 UTC">Mon 7 Jan 05:00</time>' in page
    assert "From (America/New_York)" in page
