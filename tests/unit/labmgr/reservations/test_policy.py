"""The reservation policy as a tenant meets it: the longest booking, how far ahead, hours a
week and bookings at once, refused with a 400 on the field from every booking path (REST
booking and change, the calendar's form and its extend action), set by an admin in the
admin panel with the settings as defaults; admins book past it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from labmgr.hosts.models import Host
from labmgr.reservations.models import Reservation, ReservationPolicy
from labmgr.reservations.services import reservation_cancel
from tests.unit.labmgr.reservations.helpers import WHOLE, Book, Clock, at, share

Api = Callable[[User | None], APIClient]
# T0 is Monday 2030-01-07 09:00 UTC; the defaults: 8 h, 14 days, 20 h a week, 3 at once.
CALENDAR = "/calendar/{pk}/?week=2030-01-07"
ACTION = "/calendar/reservations/{pk}/"


def body(host: Host, start: float, end: float, **extra: Any) -> dict[str, Any]:
    return {
        "host": host.pk,
        "start": at(start).isoformat(),
        "end": at(end).isoformat(),
        "whole_host": True,
        **extra,
    }


def refused(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    errors: dict[str, list[str]] = response.json()["errors"]
    return errors


def form_time(hours: float) -> str:
    return at(hours).strftime("%Y-%m-%dT%H:%M")


# --- the REST API ------------------------------------------------------------------------


def test_a_booking_longer_than_8_hours_is_a_400_on_its_end(
    api: Api, alice: User, server: Host, now: Clock
) -> None:
    response = api(alice).post("/api/reservations/", body(server, 1, 11), format="json")

    assert refused(response) == {"end": ["A booking lasts at most 8 h; this one lasts 10 h."]}
    assert response.json()["detail"] == "The booking goes past the reservation policy."
    assert not Reservation.objects.exists()


def test_a_booking_more_than_14_days_ahead_is_a_400_on_its_start(
    api: Api, alice: User, server: Host, now: Clock
) -> None:
    response = api(alice).post(
        "/api/reservations/", body(server, 15 * 24, 15 * 24 + 2), format="json"
    )

    assert refused(response) == {
        "start": ["Book at most 14 days ahead: the latest start is 2030-01-21 09:00 UTC."]
    }


def test_past_the_weekly_hours_the_400_says_how_much_is_left_this_week(
    api: Api, alice: User, server: Host, book: Book, now: Clock
) -> None:
    book(alice, 1, 9, WHOLE)  # Monday, 8 h
    book(alice, 25, 33, WHOLE)  # Tuesday, 8 h

    response = api(alice).post("/api/reservations/", body(server, 49, 54), format="json")

    assert refused(response) == {
        "end": ["You have 4 h left this week (20 h a week); this booking needs 5 h."]
    }
    fits = api(alice).post("/api/reservations/", body(server, 49, 53), format="json")
    assert fits.status_code == 201, fits.json()


def test_the_weekly_hours_of_a_later_week_are_that_weeks(
    api: Api, alice: User, server: Host, book: Book, now: Clock, settings: Any
) -> None:
    settings.LABMGR_RESERVATION_WEEKLY_HOURS = 10
    book(alice, 1, 9, WHOLE)

    # Next Monday starts a week of its own.
    response = api(alice).post(
        "/api/reservations/", body(server, 7 * 24, 7 * 24 + 8), format="json"
    )
    assert response.status_code == 201, response.json()

    too_much = api(alice).post(
        "/api/reservations/", body(server, 8 * 24, 8 * 24 + 4), format="json"
    )
    assert refused(too_much)["end"] == [
        "You have 2 h left in the week of 2030-01-14 (10 h a week); this booking needs 4 h."
    ]


def test_hours_count_on_every_host_together(
    api: Api, alice: User, server: Host, book: Book, now: Clock
) -> None:
    other = Host.objects.create(name="other", slug="other", status="online", cpus=4)
    book(alice, 1, 9, WHOLE, host=other)
    book(alice, 25, 33, WHOLE)

    response = api(alice).post("/api/reservations/", body(server, 49, 54), format="json")

    assert refused(response)["end"] == [
        "You have 4 h left this week (20 h a week); this booking needs 5 h."
    ]


def test_a_booking_cancelled_before_it_began_gives_its_hours_back(
    api: Api, alice: User, server: Host, book: Book, now: Clock
) -> None:
    book(alice, 1, 9, WHOLE)
    unused = book(alice, 25, 33, WHOLE)
    reservation_cancel(reservation=unused, actor=alice)

    response = api(alice).post("/api/reservations/", body(server, 49, 57), format="json")

    assert response.status_code == 201, response.json()


def test_a_booking_cancelled_while_it_ran_counts_the_time_it_ran(
    api: Api, alice: User, server: Host, book: Book, now: Clock
) -> None:
    running = book(alice, 0, 8, WHOLE)
    now.advance(hours=6)
    reservation_cancel(reservation=running, actor=alice)  # ran 6 h
    book(alice, 25, 33, WHOLE)

    response = api(alice).post("/api/reservations/", body(server, 49, 56), format="json")

    assert refused(response)["end"] == [
        "You have 6 h left this week (20 h a week); this booking needs 7 h."
    ]


def test_a_fourth_booking_not_ended_is_refused_until_one_ends(
    api: Api, alice: User, server: Host, book: Book, now: Clock
) -> None:
    hosts = [
        Host.objects.create(name=f"h{i}", slug=f"h{i}", status="online", cpus=4) for i in range(3)
    ]
    for host in hosts:
        book(alice, 1, 2, WHOLE, host=host)

    response = api(alice).post("/api/reservations/", body(server, 1, 2), format="json")

    assert refused(response) == {
        "bookings": [
            "You hold 3 bookings that have not ended, and one may hold at most 3 at once: "
            "cancel one, or book again once one has ended."
        ]
    }
    now.advance(hours=2)  # they are over
    again = api(alice).post("/api/reservations/", body(server, 3, 4), format="json")
    assert again.status_code == 201, again.json()


def test_every_rule_broken_at_once_names_each_field(
    api: Api, alice: User, server: Host, now: Clock
) -> None:
    start = 23 * 24  # a Wednesday, three weeks on
    response = api(alice).post("/api/reservations/", body(server, start, start + 21), format="json")

    errors = refused(response)
    assert errors["start"] == [
        "Book at most 14 days ahead: the latest start is 2030-01-21 09:00 UTC."
    ]
    assert errors["end"][0] == "A booking lasts at most 8 h; this one lasts 21 h."
    assert "20 h a week" in errors["end"][1]


def test_an_extension_past_8_hours_is_a_400_on_the_end(
    api: Api, alice: User, book: Book, now: Clock
) -> None:
    mine = book(alice, 1, 7, WHOLE)

    response = api(alice).patch(
        f"/api/reservations/{mine.pk}/", {"end": at(10).isoformat()}, format="json"
    )

    assert refused(response) == {"end": ["A booking lasts at most 8 h; this one lasts 9 h."]}
    mine.refresh_from_db()
    assert mine.end == at(7)


def test_an_extension_counts_only_what_it_adds_to_the_week(
    api: Api, alice: User, book: Book, now: Clock
) -> None:
    book(alice, 1, 9, WHOLE)
    book(alice, 25, 33, WHOLE)
    mine = book(alice, 49, 52, WHOLE)  # 19 h booked this week

    fits = api(alice).patch(
        f"/api/reservations/{mine.pk}/", {"end": at(53).isoformat()}, format="json"
    )
    assert fits.status_code == 200, fits.json()

    response = api(alice).patch(
        f"/api/reservations/{mine.pk}/", {"end": at(54).isoformat()}, format="json"
    )
    assert refused(response) == {
        "end": ["You have 0 h left this week (20 h a week); this booking needs 1 h more."]
    }


def test_moving_a_booking_past_14_days_ahead_is_a_400_on_its_start(
    api: Api, alice: User, book: Book, now: Clock
) -> None:
    mine = book(alice, 24, 26, WHOLE)

    response = api(alice).patch(
        f"/api/reservations/{mine.pk}/",
        {"start": at(15 * 24).isoformat(), "end": at(15 * 24 + 2).isoformat()},
        format="json",
    )

    assert list(refused(response)) == ["start"]


def test_shortening_a_booking_longer_than_the_policy_is_let_through(
    api: Api, alice: User, root: User, book: Book, now: Clock
) -> None:
    long = book(alice, 1, 13, WHOLE, actor=root)  # an admin booked 12 h for her

    response = api(alice).patch(
        f"/api/reservations/{long.pk}/", {"end": at(12).isoformat()}, format="json"
    )

    assert response.status_code == 200, response.json()


def test_an_admin_books_and_extends_past_every_rule(
    api: Api, root: User, alice: User, server: Host, now: Clock
) -> None:
    start = 30 * 24
    mine = api(root).post("/api/reservations/", body(server, start, start + 48), format="json")
    assert mine.status_code == 201, mine.json()
    for_her = api(root).post(
        "/api/reservations/", body(server, 1, 30, owner="alice"), format="json"
    )
    assert for_her.status_code == 201, for_her.json()

    longer = api(root).patch(
        f"/api/reservations/{for_her.json()['id']}/", {"end": at(40).isoformat()}, format="json"
    )
    assert longer.status_code == 200, longer.json()


def test_the_policy_and_my_hours_left_are_in_the_api(
    api: Api, alice: User, book: Book, now: Clock
) -> None:
    book(alice, 1, 4, WHOLE)

    data = api(alice).get("/api/reservations/policy").json()

    assert data == {
        "max_hours": 8,
        "max_days_ahead": 14,
        "weekly_hours": 20,
        "max_bookings": 3,
        "week": "2030-01-07T00:00:00Z",
        "hours_left_this_week": 17.0,
    }


# --- the calendar ------------------------------------------------------------------------


def test_the_calendar_form_tells_the_limit_next_to_the_end(
    client: Client, alice: User, server: Host, now: Clock
) -> None:
    client.force_login(alice)
    fields = {"start": form_time(1), "end": form_time(11), "whole_host": "on"}

    response = client.post(CALENDAR.format(pk=server.pk), fields)

    assert response.status_code == 400
    page = response.content.decode()
    error = (
        '<p class="field-error" id="end-error">A booking lasts at most 8 h; this one lasts 10 h.'
    )
    assert error + "</p>" in page
    assert not Reservation.objects.exists()


def test_the_calendar_says_the_rules_and_my_hours_left(
    client: Client, alice: User, server: Host, book: Book, now: Clock
) -> None:
    book(alice, 1, 3, share())
    client.force_login(alice)

    page = client.get(CALENDAR.format(pk=server.pk)).content.decode()

    rules = re.search(r'<p class="muted small" id="booking-rules">([^<]*)</p>', page)
    assert rules is not None
    assert rules.group(1) == (
        "A booking lasts at most 8 h; starts at most 14 days ahead; 20 h a week each "
        "(you have 18 h left this week); 3 bookings at once."
    )


def test_the_calendars_extend_action_is_refused_past_8_hours(
    client: Client, alice: User, book: Book, now: Clock
) -> None:
    mine = book(alice, 1, 7, WHOLE)
    client.force_login(alice)

    response = client.post(ACTION.format(pk=mine.pk), {"action": "extend", "end": form_time(10)})

    page = client.get(response["Location"]).content.decode()
    assert "A booking lasts at most 8 h; this one lasts 9 h." in page
    mine.refresh_from_db()
    assert mine.end == at(7)


# --- the admin panel and the settings ----------------------------------------------------


def test_the_admin_opens_the_policy_filled_in_with_the_settings_defaults(
    client: Client, root: User, db: None
) -> None:
    client.force_login(root)

    listed = client.get("/admin/reservations/reservationpolicy/")

    assert listed.status_code == 302
    assert listed["Location"] == "/admin/reservations/reservationpolicy/add/"
    form = client.get(listed["Location"]).content.decode()
    assert re.search(r'name="max_hours" value="8"', form)
    assert re.search(r'name="weekly_hours" value="20"', form)


def test_what_the_admin_saves_is_what_tenants_are_held_to(
    client: Client, api: Api, root: User, alice: User, server: Host, now: Clock
) -> None:
    client.force_login(root)
    saved = client.post(
        "/admin/reservations/reservationpolicy/add/",
        {"max_hours": "2", "max_days_ahead": "", "weekly_hours": "", "max_bookings": ""},
    )
    assert saved.status_code == 302
    assert ReservationPolicy.objects.get().max_hours == 2
    assert client.get("/admin/reservations/reservationpolicy/")["Location"] == (
        "/admin/reservations/reservationpolicy/1/change/"
    )

    too_long = api(alice).post("/api/reservations/", body(server, 1, 4), format="json")
    assert refused(too_long) == {"end": ["A booking lasts at most 2 h; this one lasts 3 h."]}
    # An empty bound is no bound: a month ahead is fine now.
    far = api(alice).post("/api/reservations/", body(server, 30 * 24, 30 * 24 + 2), format="json")
    assert far.status_code == 201, far.json()


def test_the_settings_set_the_defaults_until_an_admin_saves_a_policy(
    api: Api, alice: User, server: Host, now: Clock, settings: Any
) -> None:
    settings.LABMGR_RESERVATION_MAX_HOURS = 1

    response = api(alice).post("/api/reservations/", body(server, 1, 3), format="json")

    assert refused(response) == {"end": ["A booking lasts at most 1 h; this one lasts 2 h."]}
