"""Writes on reservations: book, change (extend, shorten, move), cancel; and the check a
deployment must pass.

Every write that can take capacity locks the host row first (SELECT ... FOR UPDATE on
PostgreSQL; on SQLite every transaction begins IMMEDIATE, which takes the database's
write lock), so two bookings of one host are checked one after the other, never both
against the same free capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q

from labmgr.accounts import selectors as accounts
from labmgr.accounts.services import Usage, as_labfile, deployments_usage, labfile_usage
from labmgr.deployments.choices import ACTIVE_STATES
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.reservations import clock, policy, selectors
from labmgr.reservations.choices import HOLDING_STATES, ReservationStatus
from labmgr.reservations.models import Reservation
from labmgr.reservations.reserve import host_limits
from labmgr.reservations.selectors import Amount, Segment, host_capacity, reservation_amount
from labplan.messages import Budget, budget_for
from labplan.model import Labfile
from labplan.units import format_size

R = ReservationStatus
# A booking may start this much in the past: "now" typed in a form is a moment old when
# it arrives.
START_GRACE = timedelta(minutes=1)
# How far past its end `reservation_latest_end` looks for the next booking.
EXTEND_HORIZON = timedelta(days=366)


@dataclass(frozen=True)
class Share:
    """What a booking asks for: the whole host, or CPUs, bytes of memory and processes."""

    whole_host: bool = False
    cpus: Decimal = Decimal(0)
    memory: int = 0
    pids: int = 0


def reservation_book(
    *,
    actor: User,
    host: Host,
    start: datetime,
    end: datetime,
    share: Share,
    owner: User | None = None,
    note: str = "",
    auto_deploy: Lab | None = None,
    override: bool = False,
) -> Reservation:
    """Book `host` for `owner` (default: the actor). Refused when the host would be
    overbooked at any moment of the window, naming the bookings in the way, and past the
    reservation policy (a user who is not an admin). Only admins book for someone else,
    past the policy, or `override` the capacity."""
    owner = owner or actor
    admin = accounts.user_is_admin(user=actor)
    if owner.pk != actor.pk and not admin:
        raise NotAllowed("Only an admin may book for someone else.")
    if override and not admin:
        raise NotAllowed("Only an admin may book past a host's capacity.")
    now = clock.now()
    _check_window(start, end, now=now)
    _check_share(host, share)
    if auto_deploy is not None and auto_deploy.owner_id != owner.pk and not admin:
        raise ApplicationError.for_field("auto_deploy", "Only your own labs can be auto-deployed.")
    with transaction.atomic():
        _lock(host)
        if not admin:
            _lock_user(owner)  # a user's bookings of several hosts take turns too
            policy.policy_check(owner=owner, start=start, end=end, now=now)
        _check_own_overlap(owner, host, start, end, exclude=None)
        if not override:
            _check_capacity(host, start, end, share, exclude=None, actor=actor)
        reservation = Reservation(
            owner=owner,
            host=host,
            start=start,
            end=end,
            whole_host=share.whole_host,
            cpus=share.cpus,
            memory=share.memory,
            pids=share.pids,
            note=note,
            auto_deploy=auto_deploy,
            booked_by=actor if actor.pk != owner.pk else None,
            overridden=override,
        )
        reservation.full_clean()
        reservation.save()
    return reservation


def reservation_change(
    *,
    reservation: Reservation,
    actor: User,
    start: datetime | None = None,
    end: datetime | None = None,
    note: str | None = None,
    override: bool = False,
) -> Reservation:
    """Move the start (before it has come), extend or shorten the end. An extension is
    refused past the next booking in the way (the message says how far it can go) and,
    unless an admin asks, past the reservation policy."""
    _require_change(actor, reservation)
    admin = accounts.user_is_admin(user=actor)
    if override and not admin:
        raise NotAllowed("Only an admin may book past a host's capacity.")
    now = clock.now()
    with transaction.atomic():
        locked = _lock_reservation(reservation)
        if locked.status not in HOLDING_STATES:
            raise Conflict.for_field("status", f"This reservation is {locked.status}.")
        new_start = locked.start if start is None else start
        new_end = locked.end if end is None else end
        if new_start != locked.start and locked.start <= now:
            raise Conflict.for_field("start", "The reservation has begun; its start is past.")
        if new_start != locked.start:
            _check_window(new_start, new_end, now=now)
        if new_end <= max(new_start, now):
            raise ApplicationError.for_field(
                "end", "The end must come after the start and after now; cancel it instead."
            )
        grows = new_start < locked.start or new_end > locked.end
        if (grows or new_start != locked.start) and not admin:
            _lock_user(locked.owner)
            policy.policy_check(
                owner=locked.owner, start=new_start, end=new_end, now=now, changing=locked
            )
        if grows:
            _check_own_overlap(locked.owner, locked.host, new_start, new_end, exclude=locked.pk)
            if not override:
                _check_capacity(
                    locked.host,
                    new_start,
                    new_end,
                    _share_of(locked),
                    exclude=locked.pk,
                    actor=actor,
                )
        locked.start, locked.end = new_start, new_end
        locked.overridden = locked.overridden or override
        if note is not None:
            locked.note = note
        locked.full_clean()
        locked.save(update_fields=["start", "end", "note", "overridden", "updated"])
    return locked


def reservation_extend(
    *, reservation: Reservation, actor: User, until: datetime, override: bool = False
) -> Reservation:
    if until <= reservation.end:
        raise ApplicationError.for_field("end", "An extension ends later than the reservation.")
    return reservation_change(reservation=reservation, actor=actor, end=until, override=override)


def reservation_shorten(*, reservation: Reservation, actor: User, until: datetime) -> Reservation:
    if until >= reservation.end:
        raise ApplicationError.for_field("end", "A shortened reservation ends earlier.")
    return reservation_change(reservation=reservation, actor=actor, end=until)


def reservation_latest_end(*, reservation: Reservation) -> datetime:
    """How far the reservation can be extended before a booking is in the way (at most
    EXTEND_HORIZON past its end)."""
    horizon = reservation.end + EXTEND_HORIZON
    others = list(
        selectors.reservations_holding(
            host=reservation.host, start=reservation.end, end=horizon, exclude=reservation.pk
        )
    )
    demand = reservation_amount(reservation)
    for segment in selectors.segments(others, reservation.end, horizon):
        if _overbooked(segment, demand, reservation.whole_host, host_capacity(reservation.host)):
            return segment.start
    return horizon


def reservation_cancel(*, reservation: Reservation, actor: User) -> Reservation:
    """Cancel a reservation. One that has begun ends now: the beat then destroys its labs
    like at any end."""
    _require_change(actor, reservation)
    now = clock.now()
    with transaction.atomic():
        locked = _lock_reservation(reservation)
        if locked.status not in HOLDING_STATES:
            raise Conflict.for_field("status", f"This reservation is already {locked.status}.")
        fields = ["status", "released", "cancelled_at", "updated"]
        locked.cancelled_at = now
        if locked.start <= now < locked.end:
            # Keep the record of when it really ended (the end must stay after the start);
            # the beat takes its labs down as at any end.
            locked.end = max(now, locked.start + timedelta(microseconds=1))
            fields.append("end")
        else:
            locked.released = True
        locked.status = R.CANCELLED
        locked.save(update_fields=fields)
    return locked


# The least the agent accepts of each kind (workers.decoding.decode_budget).
BUDGET_FLOOR = {"cpus": Decimal("0.01"), "memory": 1 << 20, "pids": 1}


def deployment_budget(*, host: Host, reservation: Reservation | None) -> Budget:
    """What dispatch sends with an apply for a deployment on `host` accepted under
    `reservation`: a share's own amounts; for a whole-host booking, and outside
    reservations (admins, LABMGR_REQUIRE_RESERVATION=0), what labs may use of the host,
    its capacity less its reserve (`reserve.host_limits`). Refused, naming the host, when
    the reserve leaves labs nothing of a kind."""
    if reservation is not None and not reservation.whole_host:
        return budget_for(
            reservation.pk, float(reservation.cpus), reservation.memory, reservation.pids
        )
    limits = host_limits(host)
    for kind in ("cpus", "memory", "pids"):
        value = getattr(limits, kind)
        if value is not None and value < BUDGET_FLOOR[kind]:
            raise ApplicationError.for_field(
                "host",
                f"Host {host} keeps all of its {kind} in reserve: labs get none. An admin "
                "lowers its reserve (Host reserves, in the admin panel).",
            )
    return budget_for(
        reservation.pk if reservation is not None else None,
        float(limits.cpus) if limits.cpus is not None else None,
        limits.memory,
        limits.pids,
    )


def reservation_budget(reservation: Reservation | None) -> Budget | None:
    """The budget of a deployment inside `reservation` (`deployment_budget`); None for
    no reservation."""
    if reservation is None:
        return None
    return deployment_budget(host=reservation.host, reservation=reservation)


def reservation_check_deploy(
    *, user: User, host: Host, lab: Lab | Labfile, replacing: Lab | None = None
) -> Reservation | None:
    """Refuse a deployment of `lab` on `host` by `user` outside an active reservation of
    theirs (403), or one whose node limits, with those of the user's other labs running
    on the host, do not fit the reservation's share (400). Admins are exempt; with
    LABMGR_REQUIRE_RESERVATION off nobody needs a reservation, but one that exists still
    bounds the labs in it. Returns the reservation the deployment runs in, if any.
    A lab placed on several hosts is checked on each with its nodes there (`lab`, a
    Labfile) and the Lab it redeploys as `replacing`.

    Nodes without a limit of a kind are let through: the reservation's parent cgroup
    bounds them in the kernel."""
    reservation = selectors.reservation_active_for(user=user, host=host, at=clock.now())
    if accounts.user_is_admin(user=user):
        return reservation
    if reservation is None:
        if not settings.LABMGR_REQUIRE_RESERVATION:
            return None
        raise NotAllowed.for_field("host", _no_reservation(host))
    if reservation.whole_host:
        return reservation
    on_host = Q(host=host) | Q(placements__host=host)
    running = Deployment.objects.filter(
        on_host, owner=user, status__in=sorted(ACTIVE_STATES)
    ).distinct()
    replaced = replacing if replacing is not None else lab if isinstance(lab, Lab) else None
    if replaced is not None:
        # A redeploy replaces the lab's own deployment.
        running = running.exclude(lab=replaced)
    total = deployments_usage(running) + labfile_usage(as_labfile(lab))
    if errors := _fit_errors(total, reservation):
        raise ApplicationError("The lab does not fit your reservation's share.", errors)
    return reservation


# --- helpers ---------------------------------------------------------------------------


def _require_change(actor: User, reservation: Reservation) -> None:
    if reservation.owner_id != actor.pk and not accounts.user_is_admin(user=actor):
        raise NotAllowed("Only the reservation's owner or an admin may change it.")


def _lock(host: Host) -> None:
    Host.objects.select_for_update().only("pk").get(pk=host.pk)


def _lock_user(user: User) -> None:
    get_user_model().objects.select_for_update().only("pk").get(pk=user.pk)


def _lock_reservation(reservation: Reservation) -> Reservation:
    _lock(reservation.host)
    return (
        Reservation.objects.select_for_update(of=("self",))
        .select_related("host", "owner")
        .get(pk=reservation.pk)
    )


def _share_of(reservation: Reservation) -> Share:
    return Share(
        reservation.whole_host, Decimal(reservation.cpus), reservation.memory, reservation.pids
    )


def _check_window(start: datetime, end: datetime, *, now: datetime) -> None:
    if end <= start:
        raise ApplicationError.for_field("end", "The end must come after the start.")
    if start < now - START_GRACE:
        raise ApplicationError.for_field("start", "The start is in the past.")


def _check_share(host: Host, share: Share) -> None:
    if share.whole_host:
        if share.cpus or share.memory or share.pids:
            raise ApplicationError.for_field(
                "whole_host", "Book either the whole host or a share of it, not both."
            )
        return
    errors: dict[str, list[str]] = {}
    capacity = host_capacity(host)
    for kind in ("cpus", "memory", "pids"):
        asked, has = getattr(share, kind), getattr(capacity, kind)
        if asked <= 0:
            errors[kind] = [f"A share names its {kind} (more than 0); or book the whole host."]
        elif has <= 0:
            errors[kind] = [f"Host {host} has no {kind} capacity set; book the whole host."]
        elif asked > has:
            errors[kind] = [
                f"Host {host} has {format_amount(kind, has)} of {kind}; you asked for "
                f"{format_amount(kind, asked)}."
            ]
    if errors:
        raise ApplicationError("The share does not fit the host.", errors)


def _check_own_overlap(
    owner: User, host: Host, start: datetime, end: datetime, *, exclude: int | None
) -> None:
    # One reservation per user and host at a time: a deployment knows which share it is in.
    mine = selectors.reservations_holding(host=host, start=start, end=end, exclude=exclude)
    if clash := mine.filter(owner=owner).first():
        raise Conflict.for_field(
            "window",
            f"{owner} already holds {host} {_window(clash.start, clash.end)}; "
            "change that reservation instead.",
        )


def _check_capacity(
    host: Host, start: datetime, end: datetime, share: Share, *, exclude: int | None, actor: User
) -> None:
    others = list(selectors.reservations_holding(host=host, start=start, end=end, exclude=exclude))
    capacity = host_capacity(host)
    demand = capacity if share.whole_host else Amount(share.cpus, share.memory, share.pids)
    bad = [
        s
        for s in selectors.segments(others, start, end)
        if _overbooked(s, demand, share.whole_host, capacity)
    ]
    if not bad:
        return
    in_the_way = sorted({r for s in bad for r in s.reservations}, key=lambda r: (r.start, r.pk))
    windows = [
        _window(r.start, r.end) + (" (yours)" if r.owner_id == actor.pk else "") for r in in_the_way
    ]
    first = bad[0]
    why = (
        "it is booked whole"
        if first.whole or share.whole_host
        else "it would be overbooked in " + ", ".join((first.used() + demand).over(capacity))
    )
    message = (
        f"Host {host} is not free {_window(first.start, bad[-1].end)}: {why}. "
        f"In the way: {'; '.join(windows)}."
    )
    raise Conflict(message, {"window": [message]})


def _overbooked(segment: Segment, demand: Amount, whole: bool, capacity: Amount) -> bool:
    if not segment.reservations:
        return False
    if whole or segment.whole:
        return True
    return bool((segment.used() + demand).over(capacity))


def _fit_errors(total: Usage, reservation: Reservation) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for kind in ("cpus", "memory", "pids"):
        used, held = getattr(total, kind), getattr(reservation, kind)
        if used > held:
            errors[f"limits.{kind}"] = [
                f"Your labs on {reservation.host} would set {format_amount(kind, used)} of {kind} "
                f"in limits; your reservation holds {format_amount(kind, held)}."
            ]
    return errors


def _no_reservation(host: Host) -> str:
    upcoming = (
        Reservation.objects.filter(
            host=host, status__in=sorted(HOLDING_STATES), end__gt=clock.now()
        )
        .order_by("start")
        .first()
    )
    hint = "" if upcoming is None else " Book a slot on its calendar first."
    return f"You have no reservation of {host} now; deployments run inside one.{hint}"


def format_amount(kind: str, value: Any) -> str:
    """A quantity as a labfile writes it: 1.5 (CPUs), 256M, 100 (processes)."""
    if kind == "memory":
        return str(format_size(int(value)))
    if kind == "cpus":
        return f"{Decimal(value).normalize():f}"
    return str(value)


def _window(start: datetime, end: datetime) -> str:
    return f"from {_time(start)} to {_time(end)}"


def _time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%d %H:%M")
    if moment.second:
        text += moment.strftime(":%S")
    return text + " UTC"
