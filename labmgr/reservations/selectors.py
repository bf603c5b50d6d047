"""Reads on reservations: who sees which, which one is active, and a host's busy blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from labmgr.accounts import selectors as accounts
from labmgr.hosts.models import Host
from labmgr.reservations.choices import HOLDING_STATES
from labmgr.reservations.models import Reservation
from labmgr.reservations.reserve import host_limits


def reservation_list_visible(*, user: User) -> QuerySet[Reservation]:
    """Own reservations; a teacher's also those of their students; all for admins."""
    reservations = Reservation.objects.select_related("owner", "host", "booked_by")
    if accounts.user_is_admin(user=user):
        return reservations
    students = accounts.students_of(teacher=user).values("pk")
    return reservations.filter(Q(owner=user) | Q(owner__in=students))


def reservation_get_visible(*, user: User, pk: int) -> Reservation:
    """Raises Reservation.DoesNotExist when absent or not the user's to see."""
    return reservation_list_visible(user=user).get(pk=pk)


def reservations_holding(
    *, host: Host, start: datetime, end: datetime, exclude: int | None = None
) -> QuerySet[Reservation]:
    """Reservations holding part of `host` at some moment of [start, end)."""
    holding = Reservation.objects.filter(
        host=host, status__in=sorted(HOLDING_STATES), start__lt=end, end__gt=start
    )
    if exclude is not None:
        holding = holding.exclude(pk=exclude)
    return holding.select_related("owner").order_by("start", "id")


def reservation_active_for(*, user: User, host: Host, at: datetime) -> Reservation | None:
    """The user's reservation of `host` running at `at` (a user holds at most one at a
    time on a host), or None."""
    return (
        Reservation.objects.filter(
            owner=user,
            host=host,
            status__in=sorted(HOLDING_STATES),
            start__lte=at,
            end__gt=at,
        )
        .order_by("start", "id")
        .first()
    )


@dataclass(frozen=True)
class Amount:
    """CPUs, bytes of memory and processes: a share, a capacity or a sum of shares."""

    cpus: Decimal = Decimal(0)
    memory: int = 0
    pids: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.cpus + other.cpus, self.memory + other.memory, self.pids + other.pids)

    def __sub__(self, other: Amount) -> Amount:
        return Amount(self.cpus - other.cpus, self.memory - other.memory, self.pids - other.pids)

    def over(self, capacity: Amount) -> list[str]:
        """The kinds in which this amount exceeds `capacity`."""
        return [k for k in ("cpus", "memory", "pids") if getattr(self, k) > getattr(capacity, k)]

    def as_dict(self) -> dict[str, Any]:
        return {"cpus": float(self.cpus), "memory": self.memory, "pids": self.pids}


def host_capacity(host: Host) -> Amount:
    """What the host lends to shares: its capacity, never past its machine less its
    reserve (`reserve.host_limits`). A kind whose capacity is not set lends nothing: the
    host is then booked whole."""
    limits = host_limits(host)
    return Amount(
        limits.cpus if host.cpus and limits.cpus is not None else Decimal(0),
        limits.memory if host.memory and limits.memory is not None else 0,
        limits.pids if host.pids and limits.pids is not None else 0,
    )


def reservation_amount(reservation: Reservation) -> Amount:
    """What the reservation takes from its host: all of it for a whole-host booking."""
    if reservation.whole_host:
        return host_capacity(reservation.host)
    return Amount(Decimal(reservation.cpus), reservation.memory, reservation.pids)


@dataclass(frozen=True)
class Segment:
    """A stretch of time in which the same reservations hold the host."""

    start: datetime
    end: datetime
    reservations: tuple[Reservation, ...]

    @property
    def whole(self) -> bool:
        return any(r.whole_host for r in self.reservations)

    def used(self) -> Amount:
        total = Amount()
        for reservation in self.reservations:
            total = total + reservation_amount(reservation)
        return total


def segments(reservations: list[Reservation], start: datetime, end: datetime) -> list[Segment]:
    """[start, end) cut at every reservation boundary, each piece with the reservations
    holding it. A window holds few bookings, so each piece scans them all."""
    cuts = {start, end}
    for r in reservations:
        cuts.update(t for t in (r.start, r.end) if start < t < end)
    times = sorted(cuts)
    pieces = []
    for a, b in pairwise(times):
        holding = tuple(r for r in reservations if r.start < b and r.end > a)
        pieces.append(Segment(a, b, holding))
    return pieces


def host_availability(*, user: User, host: Host, start: datetime, end: datetime) -> dict[str, Any]:
    """The host's bookings in [start, end) as busy blocks, and what is free between them.
    Others' names are shown to teachers and admins only."""
    names = accounts.user_is_teacher(user=user)
    admin = accounts.user_is_admin(user=user)
    holding = list(reservations_holding(host=host, start=start, end=end))
    capacity = host_capacity(host)
    blocks = [
        {
            "id": r.pk if (r.owner_id == user.pk or admin) else None,
            "start": r.start,
            "end": r.end,
            "mine": r.owner_id == user.pk,
            "owner": r.owner.username if (names or r.owner_id == user.pk) else None,
            "whole_host": r.whole_host,
            **reservation_amount(r).as_dict(),
        }
        for r in holding
    ]
    free = [
        {
            "start": s.start,
            "end": s.end,
            "whole_host_free": not s.reservations,
            **(Amount() if s.whole else _floor(capacity - s.used())).as_dict(),
        }
        for s in segments(holding, start, end)
    ]
    return {
        "host": host.pk,
        "from": start,
        "to": end,
        "capacity": capacity.as_dict(),
        "blocks": blocks,
        "free": free,
    }


def _floor(amount: Amount) -> Amount:
    # An admin's override may overbook: nothing is free then, never less than nothing.
    return Amount(max(amount.cpus, Decimal(0)), max(amount.memory, 0), max(amount.pids, 0))
