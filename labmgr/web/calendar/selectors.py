"""Reads the calendar and the dashboard show: the user's bookings, the reservation policy
in a sentence, and what a host lends to shares."""

from __future__ import annotations

from django.contrib.auth.models import User

from labmgr.accounts.selectors import user_is_admin as is_admin
from labmgr.hosts.models import Host
from labmgr.reservations import clock
from labmgr.reservations.choices import HOLDING_STATES
from labmgr.reservations.models import Reservation
from labmgr.reservations.policy import policy_current, policy_hours_left
from labmgr.reservations.selectors import host_capacity
from labmgr.reservations.services import format_amount


def my_reservations(*, user: User, host: Host | None = None) -> list[Reservation]:
    """The user's bookings not over yet (of `host`, if given), soonest first: the
    dashboard's panel and the calendar's "My bookings"."""
    mine = Reservation.objects.filter(
        owner=user, status__in=sorted(HOLDING_STATES), end__gt=clock.now()
    )
    if host is not None:
        mine = mine.filter(host=host)
    return list(mine.select_related("host").order_by("start", "id")[:20])


def capacity_text(host: Host) -> str:
    """What shares of the host may take, in words."""
    if not (host.cpus or host.memory or host.pids):
        return "no share capacity set: book it whole"
    # What shares may take: the capacity, less what the host keeps in reserve.
    lent = host_capacity(host)
    return (
        f"{format_amount('cpus', lent.cpus)} CPU · {format_amount('memory', lent.memory)} · "
        f"{lent.pids} processes to share"
    )


def rules_text(*, user: User) -> str:
    """The reservation policy in a sentence, with the user's hours left this week."""
    rules = policy_current()
    parts = []
    if rules.max_hours is not None:
        parts.append(f"a booking lasts at most {rules.max_hours} h")
    if rules.max_days_ahead is not None:
        parts.append(f"starts at most {rules.max_days_ahead} days ahead")
    if rules.weekly_hours is not None:
        left = policy_hours_left(owner=user, now=clock.now())
        hours = f"{left.total_seconds() / 3600:g}" if left is not None else "?"
        parts.append(f"{rules.weekly_hours} h a week each (you have {hours} h left this week)")
    if rules.max_bookings is not None:
        parts.append(f"{rules.max_bookings} bookings at once")
    if not parts:
        return ""
    text = "; ".join(parts)
    if is_admin(user=user):
        return f"The policy: {text}. As an admin you may book past it."
    return text[0].upper() + text[1:] + "."
