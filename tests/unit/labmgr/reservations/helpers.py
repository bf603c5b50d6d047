"""Helpers of the reservation tests: times relative to a fixed Monday, shares, a clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from labmgr.reservations.models import Reservation
from labmgr.reservations.services import Share

GIB = 2**30
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


class Clock:
    """The reservations' time, moved by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


def at(hours: float) -> datetime:
    """T0 plus `hours`."""
    return T0 + timedelta(hours=hours)


def share(cpus: float = 1, memory: int = GIB, pids: int = 100) -> Share:
    return Share(False, Decimal(str(cpus)), memory, pids)


WHOLE = Share(whole_host=True)

Book = Callable[..., Reservation]
