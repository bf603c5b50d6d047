"""Browser events about reservations, published through `labmgr.events` to the owner's
reservations group (`reservations.<user id>`), which the dashboard and calendar follow.

The group is not `user.<id>`: terminal consumers join that one and have no handler for
these events.
"""

from __future__ import annotations

from labmgr import events
from labmgr.events import ReservationEndedEvent, ReservationWarningEvent
from labmgr.reservations.models import Reservation


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
    events.publish([reservation_group(reservation.owner_id)], event)


def publish_ended(reservation: Reservation, *, destroyed: list[int]) -> None:
    event: ReservationEndedEvent = {
        "type": "reservation.ended",
        "reservation": reservation.pk,
        "host": reservation.host.slug,
        "status": reservation.status,
        "destroyed": destroyed,
    }
    events.publish([reservation_group(reservation.owner_id)], event)
