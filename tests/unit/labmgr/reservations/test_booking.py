"""Booking a host or a share of it: capacity over the whole window, conflicts named."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.hosts.models import Host
from labmgr.reservations.choices import ReservationStatus
from tests.unit.labmgr.reservations.helpers import GIB, WHOLE, Book, Clock, share


def test_a_share_that_fits_is_booked(book: Book, alice: User) -> None:
    reservation = book(alice, 1, 3, share(cpus=2, memory=4 * GIB, pids=500))
    assert (reservation.status, reservation.owner, reservation.whole_host) == (
        ReservationStatus.SCHEDULED,
        alice,
        False,
    )
    assert (float(reservation.cpus), reservation.memory, reservation.pids) == (2.0, 4 * GIB, 500)


def test_shares_that_together_fit_the_host_overlap(book: Book, alice: User, bob: User) -> None:
    book(alice, 1, 3, share(cpus=2, memory=4 * GIB))
    book(bob, 2, 4, share(cpus=2, memory=4 * GIB))


def test_it_refuses_a_share_that_overbooks_the_host_and_names_the_window(
    book: Book, alice: User, bob: User, charlie: User
) -> None:
    book(alice, 1, 3, share(cpus=2))
    book(bob, 2, 4, share(cpus=1))
    with pytest.raises(Conflict) as refused:
        book(charlie, 0, 5, share(cpus=2))
    assert refused.value.message == (
        "Host server is not free from 2030-01-07 11:00 UTC to 2030-01-07 12:00 UTC: "
        "it would be overbooked in cpus. In the way: from 2030-01-07 10:00 UTC to "
        "2030-01-07 12:00 UTC; from 2030-01-07 11:00 UTC to 2030-01-07 13:00 UTC."
    )
    assert refused.value.status == 409


def test_back_to_back_bookings_do_not_conflict(book: Book, alice: User, bob: User) -> None:
    book(alice, 1, 2, WHOLE)
    book(bob, 2, 3, WHOLE)


def test_a_whole_host_booking_conflicts_with_any_overlapping_share(
    book: Book, alice: User, bob: User
) -> None:
    book(alice, 1, 2, share(cpus=0.5, memory=GIB, pids=1))
    with pytest.raises(Conflict, match=r"it is booked whole\. In the way: from 2030-01-07 10:00"):
        book(bob, 1.5, 3, WHOLE)


def test_a_share_cannot_overlap_a_whole_host_booking(book: Book, alice: User, bob: User) -> None:
    book(alice, 1, 2, WHOLE)
    with pytest.raises(Conflict, match="it is booked whole"):
        book(bob, 0, 1.25, share())


def test_the_conflict_marks_the_users_own_booking(book: Book, alice: User) -> None:
    other = book(alice, 1, 2, WHOLE)
    with pytest.raises(Conflict, match=r"already holds server from 2030-01-07 10:00 UTC"):
        book(alice, 1.5, 3, share())
    assert other.status == ReservationStatus.SCHEDULED


def test_cancelled_bookings_free_the_host(book: Book, alice: User, bob: User) -> None:
    from labmgr.reservations.services import reservation_cancel

    first = book(alice, 1, 2, WHOLE)
    reservation_cancel(reservation=first, actor=alice)
    assert book(bob, 1, 2, WHOLE).owner == bob


def test_it_refuses_a_share_larger_than_the_host(book: Book, alice: User) -> None:
    with pytest.raises(ApplicationError) as refused:
        book(alice, 1, 2, share(cpus=8, memory=16 * GIB, pids=0))
    assert refused.value.errors == {
        "cpus": ["Host server has 4 of cpus; you asked for 8."],
        "memory": ["Host server has 8G of memory; you asked for 16G."],
        "pids": ["A share names its pids (more than 0); or book the whole host."],
    }


def test_a_share_of_a_host_without_capacity_is_refused(
    book: Book, alice: User, server: Host
) -> None:
    bare = Host.objects.create(name="bare", slug="bare")
    with pytest.raises(ApplicationError) as refused:
        book(alice, 1, 2, share(), host=bare)
    assert refused.value.errors["cpus"] == [
        "Host bare has no cpus capacity set; book the whole host."
    ]
    assert book(alice, 1, 2, WHOLE, host=bare).whole_host


def test_it_refuses_an_end_before_the_start_and_a_start_in_the_past(
    book: Book, alice: User, now: Clock
) -> None:
    with pytest.raises(ApplicationError) as backwards:
        book(alice, 2, 1)
    assert backwards.value.errors == {"end": ["The end must come after the start."]}
    now.advance(hours=3)
    with pytest.raises(ApplicationError) as past:
        book(alice, 1, 4)
    assert past.value.errors == {"start": ["The start is in the past."]}


def test_only_admins_book_for_others_and_override(
    book: Book, alice: User, bob: User, root: User
) -> None:
    with pytest.raises(NotAllowed, match="Only an admin may book for someone else"):
        book(bob, 1, 2, actor=alice)
    book(alice, 1, 2, WHOLE)
    with pytest.raises(NotAllowed, match="past a host's capacity"):
        book(bob, 1, 2, WHOLE, override=True)
    forced = book(bob, 1, 2, WHOLE, actor=root, override=True)
    assert (forced.owner, forced.booked_by, forced.overridden) == (bob, root, True)
