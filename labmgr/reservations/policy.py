"""The reservation policy: what a user who is not an admin may book (the longest booking,
how far ahead it may start, hours a week, bookings not over yet), and the check every
booking path runs through the reservation services.

The policy is the admin's row (`ReservationPolicy`, edited in the admin panel) or, until
one is saved, the LABMGR_RESERVATION_MAX_* settings. Weeks run Monday to Sunday in UTC,
and a user's hours count every host together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import F, Q

from labmgr.errors import ApplicationError
from labmgr.reservations.choices import HOLDING_STATES, ReservationStatus
from labmgr.reservations.models import Reservation, ReservationPolicy

R = ReservationStatus
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Policy:
    """The bounds a booking of a user who is not an admin keeps; None is no bound."""

    max_hours: int | None
    max_days_ahead: int | None
    weekly_hours: int | None
    max_bookings: int | None

    def as_dict(self) -> dict[str, int | None]:
        return {
            "max_hours": self.max_hours,
            "max_days_ahead": self.max_days_ahead,
            "weekly_hours": self.weekly_hours,
            "max_bookings": self.max_bookings,
        }


def policy_defaults() -> Policy:
    """The policy the settings give, before an admin saves one."""
    return Policy(
        settings.LABMGR_RESERVATION_MAX_HOURS,
        settings.LABMGR_RESERVATION_MAX_DAYS_AHEAD,
        settings.LABMGR_RESERVATION_WEEKLY_HOURS,
        settings.LABMGR_RESERVATION_MAX_BOOKINGS,
    )


def policy_current() -> Policy:
    """The admin's policy if one was saved, else the settings' defaults."""
    row = ReservationPolicy.objects.filter(pk=1).first()
    if row is None:
        return policy_defaults()
    return Policy(row.max_hours, row.max_days_ahead, row.weekly_hours, row.max_bookings)


def policy_check(
    *,
    owner: User,
    start: datetime,
    end: datetime,
    now: datetime,
    changing: Reservation | None = None,
) -> None:
    """Refuse (400, each message on the field it is about) a booking of `owner` from
    `start` to `end` past the policy. `changing` is the booking being moved or extended:
    it is not counted twice, and only what the change adds is checked (its start only if
    it moves; the count of bookings not at all)."""
    policy = policy_current()
    errors: dict[str, list[str]] = {}
    if policy.max_hours is not None and end - start > policy.max_hours * HOUR:
        errors.setdefault("end", []).append(
            f"A booking lasts at most {policy.max_hours} h; this one lasts {_span(end - start)}."
        )
    moved = changing is None or start != changing.start
    if policy.max_days_ahead is not None and moved:
        latest = now + timedelta(days=policy.max_days_ahead)
        if start > latest:
            errors.setdefault("start", []).append(
                f"Book at most {policy.max_days_ahead} days ahead: the latest start is "
                f"{_when(latest)}."
            )
    weekly = policy.weekly_hours
    if weekly is not None and (
        sentences := _weekly_errors(owner, start, end, now, weekly, changing)
    ):
        errors.setdefault("end", []).extend(sentences)
    if policy.max_bookings is not None and changing is None:
        held = Reservation.objects.filter(
            owner=owner, status__in=sorted(HOLDING_STATES), end__gt=now
        ).count()
        if held >= policy.max_bookings:
            errors["bookings"] = [
                f"You hold {held} bookings that have not ended, and one may hold at most "
                f"{policy.max_bookings} at once: cancel one, or book again once one has ended."
            ]
    if errors:
        raise ApplicationError("The booking goes past the reservation policy.", errors)


def policy_hours_left(*, owner: User, now: datetime) -> timedelta | None:
    """How much `owner` may still book in the week holding `now`; None for no bound."""
    policy = policy_current()
    if policy.weekly_hours is None:
        return None
    monday = week_of(now)
    used = _used(owner, monday, monday + WEEK, exclude=None)
    return max(policy.weekly_hours * HOUR - used, timedelta(0))


def week_of(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding `moment`."""
    day = moment.astimezone(UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def _weekly_errors(
    owner: User,
    start: datetime,
    end: datetime,
    now: datetime,
    weekly_hours: int,
    changing: Reservation | None,
) -> list[str]:
    """A sentence for each week the booking would take the owner past their hours in."""
    allowed = weekly_hours * HOUR
    exclude = changing.pk if changing is not None else None
    sentences = []
    monday = week_of(start)
    while monday < end:
        sunday_night = monday + WEEK
        asked = _overlap(start, end, monday, sunday_night)
        if changing is not None:
            # What the booking already held in this week is already counted as its own.
            asked -= _overlap(changing.start, changing.end, monday, sunday_night)
        used = _used(owner, monday, sunday_night, exclude=exclude)
        if changing is not None:
            used += _overlap(changing.start, changing.end, monday, sunday_night)
        if asked > timedelta(0) and used + asked > allowed:
            week = "this week" if monday == week_of(now) else f"in the week of {monday:%Y-%m-%d}"
            left = max(allowed - used, timedelta(0))
            needs = _span(asked) + (" more" if changing is not None else "")
            sentences.append(
                f"You have {_span(left)} left {week} ({weekly_hours} h a week); "
                f"this booking needs {needs}."
            )
        monday = sunday_night
    return sentences


def _used(owner: User, start: datetime, end: datetime, *, exclude: int | None) -> timedelta:
    """How much of [start, end) the owner's bookings hold: upcoming, running and past ones,
    and a cancelled one for the time it ran (cancelling a running booking moves its end
    to the moment it was cancelled; one cancelled before it began gives its hours back)."""
    counted = Q(status__in=[R.SCHEDULED, R.ACTIVE, R.CLOSED]) | Q(
        status=R.CANCELLED, cancelled_at__gt=F("start")
    )
    bookings = Reservation.objects.filter(counted, owner=owner, start__lt=end, end__gt=start)
    if exclude is not None:
        bookings = bookings.exclude(pk=exclude)
    total = timedelta(0)
    for booked_start, booked_end in bookings.values_list("start", "end"):
        total += _overlap(booked_start, booked_end, start, end)
    return total


def _overlap(a: datetime, b: datetime, c: datetime, d: datetime) -> timedelta:
    return max(min(b, d) - max(a, c), timedelta(0))


def _span(span: timedelta) -> str:
    """A duration as the messages write it: 8 h, 2 h 30 min, 45 min."""
    minutes = int(span.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours} h {rest} min"
    return f"{rest} min" if rest else f"{hours} h"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
