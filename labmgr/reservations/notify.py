"""Browser events about reservations, published through `labmgr.events` to the owner's
reservations group (`reservations.<user id>`), which the dashboard and calendar follow.

The group is not `user.<id>`: terminal consumers join that one and have no handler for
these events.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from labmgr import events
from labmgr.reservations.models import Reservation


class ReservationWarningEvent(TypedDict):
    type: Literal["reservation.warning"]
    reservation: int
    host: str
    end: str
    seconds_left: int
    final: bool


class ReservationEndedEvent(TypedDict):
    type: Literal["reservation.ended"]
    reservation: int
    host: str
    status: str
    destroyed: list[int]  # deployments taken down


def reservation_group(user_id: int) -> str:
    return f"reservations.{user_id}"


def publish_warning(reservation: Reservation, *, seconds_left: int, final: bool) -> None:
    event: ReservationWarningEvent = {
        "type": "reservation.warning",
        "reservation": reservation.pk,
        "host": reservation.host.slug,
        "end": reservation.end.isoformat(),
        "seconds_left": seconds_left,
        "final": final,
    }
    events.publish([reservation_group(reservation.owner_id)], event)  # type: ignore[list-item]


def publish_ended(reservation: Reservation, *, destroyed: list[int]) -> None:
    event: ReservationEndedEvent = {
        "type": "reservation.ended",
        "reservation": reservation.pk,
        "host": reservation.host.slug,
        "status": reservation.status,
        "destroyed": destroyed,
    }
    events.publish([reservation_group(reservation.owner_id)], event)  # type: ignore[list-item]
