"""The reservations REST API and a host's availability, as a client sees them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.accounts.services import classroom_create
from labmgr.hosts.models import Host
from labmgr.reservations.models import Reservation
from tests.unit.labmgr.reservations.helpers import GIB, WHOLE, Book, Clock, at, share

Api = Callable[[User | None], APIClient]


def body(host: Host, start: float, end: float, **extra: Any) -> dict[str, Any]:
    return {"host": host.pk, "start": at(start).isoformat(), "end": at(end).isoformat(), **extra}


def test_a_user_books_a_share_with_a_size_and_gets_it_back(
    api: Api, alice: User, server: Host, now: Clock
) -> None:
    response = api(alice).post(
        "/api/reservations/",
        body(server, 1, 2, cpus=1.5, memory="512M", pids=100, note="lab 3"),
        format="json",
    )
    assert response.status_code == 201, response.json()
    item = response.json()
    assert {k: item[k] for k in ("owner", "host", "start", "end", "cpus", "memory", "status")} == {
        "owner": "alice",
        "host": server.pk,
        "start": "2030-01-07T10:00:00Z",
        "end": "2030-01-07T11:00:00Z",
        "cpus": 1.5,
        "memory": 512 * 2**20,
        "status": "scheduled",
    }
    listed = api(alice).get("/api/reservations/").json()["results"]
    assert [r["id"] for r in listed] == [item["id"]]


def test_a_booking_over_another_is_a_409_naming_the_window(
    api: Api, alice: User, bob: User, server: Host, book: Book
) -> None:
    book(alice, 1, 2, WHOLE)
    response = api(bob).post(
        "/api/reservations", body(server, 1.5, 3, whole_host=True), format="json"
    )
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Host server is not free from 2030-01-07 10:30 UTC to 2030-01-07 11:00 UTC: it is "
        "booked whole. In the way: from 2030-01-07 10:00 UTC to 2030-01-07 11:00 UTC."
    )


def test_a_bad_size_is_a_400_on_its_field(api: Api, alice: User, server: Host, now: Clock) -> None:
    response = api(alice).post(
        "/api/reservations/", body(server, 1, 2, cpus=1, memory="12Q", pids=1), format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["memory"]


def test_the_owner_extends_then_cancels(api: Api, alice: User, server: Host, book: Book) -> None:
    mine = book(alice, 1, 2, share())
    response = api(alice).patch(
        f"/api/reservations/{mine.pk}/", {"end": at(3).isoformat()}, format="json"
    )
    assert (response.status_code, response.json()["end"]) == (200, "2030-01-07T12:00:00Z")
    assert api(alice).delete(f"/api/reservations/{mine.pk}").status_code == 204
    assert api(alice).get(f"/api/reservations/{mine.pk}").json()["status"] == "cancelled"


def test_an_extension_into_the_next_booking_is_refused(
    api: Api, alice: User, bob: User, book: Book
) -> None:
    mine = book(alice, 1, 2, WHOLE)
    book(bob, 3, 4, WHOLE)
    response = api(alice).patch(
        f"/api/reservations/{mine.pk}", {"end": at(3.5).isoformat()}, format="json"
    )
    assert response.status_code == 409
    assert (
        "In the way: from 2030-01-07 12:00 UTC to 2030-01-07 13:00 UTC."
        in response.json()["detail"]
    )


def test_an_admin_books_for_a_user(
    api: Api, root: User, alice: User, server: Host, now: Clock
) -> None:
    response = api(root).post(
        "/api/reservations/", body(server, 1, 2, whole_host=True, owner="alice"), format="json"
    )
    assert (response.status_code, response.json()["owner"], response.json()["booked_by"]) == (
        201,
        "alice",
        "root",
    )
    refused = api(alice).post(
        "/api/reservations/", body(server, 3, 4, whole_host=True, owner="root"), format="json"
    )
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "Only an admin may book for someone else.",
    )


def test_availability_shows_busy_blocks_without_others_names(
    api: Api, alice: User, bob: User, server: Host, book: Book
) -> None:
    mine = book(alice, 1, 2, share(cpus=1, memory=GIB, pids=100))
    book(bob, 1.5, 3, share(cpus=2, memory=2 * GIB, pids=100))
    url = f"/api/hosts/{server.pk}/availability?from={at(0).isoformat()}&to={at(4).isoformat()}"
    response = api(alice).get(url)
    assert response.status_code == 200
    data = response.json()
    assert data["capacity"] == {"cpus": 4.0, "memory": 8 * GIB, "pids": 1000}
    assert [(b["id"], b["owner"], b["mine"], b["start"], b["end"]) for b in data["blocks"]] == [
        (mine.pk, "alice", True, "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z"),
        (None, None, False, "2030-01-07T10:30:00Z", "2030-01-07T12:00:00Z"),
    ]
    assert [(f["start"], f["cpus"], f["whole_host_free"]) for f in data["free"]] == [
        ("2030-01-07T09:00:00Z", 4.0, True),
        ("2030-01-07T10:00:00Z", 3.0, False),
        ("2030-01-07T10:30:00Z", 1.0, False),
        ("2030-01-07T11:00:00Z", 2.0, False),
        ("2030-01-07T12:00:00Z", 4.0, True),
    ]


def test_teachers_and_admins_see_who_booked(
    api: Api, alice: User, bob: User, root: User, server: Host, book: Book
) -> None:
    book(bob, 1, 2, WHOLE)
    teacher = User.objects.create_user("dave")
    classroom_create(name="net-101", teacher=teacher, members=[alice])
    url = f"/api/hosts/{server.pk}/availability/?from={at(0).isoformat()}"
    for user in (teacher, root):
        assert [b["owner"] for b in api(user).get(url).json()["blocks"]] == ["bob"]


def test_availability_refuses_a_backwards_or_unreadable_window(
    api: Api, alice: User, server: Host, now: Clock
) -> None:
    backwards = api(alice).get(
        f"/api/hosts/{server.pk}/availability?from={at(2).isoformat()}&to={at(1).isoformat()}"
    )
    assert (backwards.status_code, backwards.json()["errors"]) == (
        400,
        {"to": ["`to` must come after `from`."]},
    )
    junk = api(alice).get(f"/api/hosts/{server.pk}/availability?from=monday")
    assert junk.json()["errors"] == {"from": ["'monday' is not an ISO 8601 date and time."]}
    assert api(alice).get("/api/hosts/999/availability").status_code == 404


def test_the_reservation_list_filters_by_host(
    api: Api, alice: User, server: Host, book: Book
) -> None:
    other = Host.objects.create(name="other", slug="other")
    book(alice, 1, 2, WHOLE)
    book(alice, 1, 2, WHOLE, host=other)
    results = api(alice).get(f"/api/reservations/?host={other.pk}").json()["results"]
    assert [r["host_name"] for r in results] == ["other"]
    assert Reservation.objects.count() == 2
