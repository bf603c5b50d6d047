"""Extending, shortening and cancelling a reservation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.reservations.choices import ReservationStatus
from labmgr.reservations.services import (
    reservation_cancel,
    reservation_change,
    reservation_extend,
    reservation_latest_end,
    reservation_shorten,
)
from tests.unit.labmgr.reservations.helpers import WHOLE, Book, Clock, at, share


def test_an_extension_into_free_time_is_accepted(book: Book, alice: User) -> None:
    mine = book(alice, 1, 2, share(cpus=3))
    assert reservation_extend(reservation=mine, actor=alice, until=at(4)).end == at(4)


def test_an_extension_stops_at_the_next_conflicting_booking(
    book: Book, alice: User, bob: User
) -> None:
    mine = book(alice, 1, 2, share(cpus=3))
    book(bob, 3, 5, share(cpus=2))
    assert reservation_latest_end(reservation=mine) == at(3)
    with pytest.raises(Conflict, match=r"not free from 2030-01-07 12:00 UTC to 2030-01-07 13:00"):
        reservation_extend(reservation=mine, actor=alice, until=at(4))
    assert reservation_extend(reservation=mine, actor=alice, until=at(3)).end == at(3)


def test_a_share_that_still_fits_extends_past_another_share(
    book: Book, alice: User, bob: User
) -> None:
    mine = book(alice, 1, 2, share(cpus=1))
    book(bob, 3, 5, share(cpus=2))
    assert reservation_latest_end(reservation=mine) > at(24)
    assert reservation_extend(reservation=mine, actor=alice, until=at(6)).end == at(6)


def test_shortening_frees_the_end_for_others(book: Book, alice: User, bob: User) -> None:
    mine = book(alice, 1, 4, WHOLE)
    reservation_shorten(reservation=mine, actor=alice, until=at(2))
    assert book(bob, 2, 4, WHOLE).start == at(2)


def test_a_reservation_cannot_end_before_now(book: Book, alice: User, now: Clock) -> None:
    mine = book(alice, 0, 4, WHOLE)
    now.advance(hours=2)
    with pytest.raises(ApplicationError, match="after now; cancel it instead"):
        reservation_shorten(reservation=mine, actor=alice, until=at(1))


def test_a_begun_reservation_keeps_its_start(book: Book, alice: User, now: Clock) -> None:
    mine = book(alice, 0, 4, WHOLE)
    now.advance(hours=1)
    with pytest.raises(Conflict, match="its start is past"):
        reservation_change(reservation=mine, actor=alice, start=at(0.5))


def test_only_the_owner_or_an_admin_changes_a_reservation(
    book: Book, alice: User, bob: User, root: User
) -> None:
    mine = book(alice, 1, 2, WHOLE)
    with pytest.raises(NotAllowed, match="owner or an admin"):
        reservation_extend(reservation=mine, actor=bob, until=at(3))
    assert reservation_extend(reservation=mine, actor=root, until=at(3)).end == at(3)


def test_an_admin_may_extend_over_another_booking(
    book: Book, alice: User, bob: User, root: User
) -> None:
    mine = book(alice, 1, 2, WHOLE)
    book(bob, 2, 3, WHOLE)
    extended = reservation_extend(reservation=mine, actor=root, until=at(3), override=True)
    assert (extended.end, extended.overridden) == (at(3), True)


def test_cancelling_an_upcoming_reservation_keeps_its_window(book: Book, alice: User) -> None:
    mine = book(alice, 1, 2, WHOLE)
    cancelled = reservation_cancel(reservation=mine, actor=alice)
    assert (cancelled.status, cancelled.end) == (ReservationStatus.CANCELLED, at(2))
    with pytest.raises(Conflict, match="already cancelled"):
        reservation_cancel(reservation=mine, actor=alice)


def test_cancelling_a_running_reservation_ends_it_now(book: Book, alice: User, now: Clock) -> None:
    mine = book(alice, 0, 4, WHOLE)
    now.advance(hours=1)
    cancelled = reservation_cancel(reservation=mine, actor=alice)
    assert (cancelled.status, cancelled.end) == (ReservationStatus.CANCELLED, at(1))
