"""What the beat does to reservations as time passes (`reservations_tick`): at the start,
mark them active and deploy the chosen lab; before the end, warn the owner (at
LABMGR_RESERVATION_WARN_BEFORE and again at one minute); at the end, close them and take
the owner's labs on the host down. Time comes from `clock.now()`.

Each step is idempotent: a tick that runs twice, or late, does each thing once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from labmgr.deployments import lifecycle as deployments
from labmgr.deployments.choices import KEPT_STATES
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError
from labmgr.reservations import clock, notify, selectors
from labmgr.reservations.choices import HOLDING_STATES, ReservationStatus
from labmgr.reservations.models import Reservation
from labplan.errors import LabfileError

log = logging.getLogger(__name__)
R = ReservationStatus
FINAL_WARNING = timedelta(minutes=1)


@dataclass
class TickReport:
    """Reservation ids each step acted on."""

    started: list[int] = field(default_factory=list)
    warned: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)


def reservations_tick() -> TickReport:
    now = clock.now()
    report = TickReport()
    report.ended = [r.pk for r in _due_to_end(now) if _end(r.pk, now)]
    report.started = [r.pk for r in _due_to_start(now) if _start(r.pk, now)]
    report.warned = [r.pk for r in _due_to_warn(now) if _warn(r.pk, now)]
    return report


# --- start ------------------------------------------------------------------------------


def _due_to_start(now: datetime) -> list[Reservation]:
    return list(Reservation.objects.filter(status=R.SCHEDULED, start__lte=now, end__gt=now))


def _start(pk: int, now: datetime) -> bool:
    with transaction.atomic():
        reservation = _locked(pk)
        if reservation.status != R.SCHEDULED:
            return False
        reservation.status = R.ACTIVE
        reservation.save(update_fields=["status", "updated"])
    if reservation.auto_deploy is not None:
        _auto_deploy(reservation)
    return True


def _auto_deploy(reservation: Reservation) -> None:
    lab = reservation.auto_deploy
    assert lab is not None
    try:
        deployments.deployment_deploy(lab=lab, actor=reservation.owner)
    except (ApplicationError, LabfileError) as exc:
        # A lab whose rows no longer validate (e.g. past a bound added since) is refused
        # like any other, not a crash of the tick.
        reason = exc.message if isinstance(exc, ApplicationError) else str(exc)
        log.info("auto-deploy of %s for reservation %s refused: %s", lab, reservation.pk, exc)
        _note_error(reservation, f"Auto-deploy of {lab.name!r} refused: {reason}")


# --- warnings ---------------------------------------------------------------------------


def _due_to_warn(now: datetime) -> list[Reservation]:
    horizon = now + timedelta(seconds=settings.LABMGR_RESERVATION_WARN_BEFORE)
    return list(
        Reservation.objects.filter(
            status__in=sorted(HOLDING_STATES), start__lte=now, end__gt=now, end__lte=horizon
        )
    )


def _warn(pk: int, now: datetime) -> bool:
    with transaction.atomic():
        reservation = _locked(pk)
        left = reservation.end - now
        final = left <= FINAL_WARNING
        if final:
            if reservation.final_warned_for == reservation.end:
                return False
            reservation.final_warned_for = reservation.end
        elif reservation.warned_for == reservation.end:
            return False
        # The early warning is not sent after the final one.
        reservation.warned_for = reservation.end
        reservation.save(update_fields=["warned_for", "final_warned_for", "updated"])
        notify.publish_warning(reservation, seconds_left=int(left.total_seconds()), final=final)
    return True


# --- end --------------------------------------------------------------------------------


def _due_to_end(now: datetime) -> list[Reservation]:
    return list(Reservation.objects.filter(released=False, end__lte=now).order_by("end", "id"))


def _end(pk: int, now: datetime) -> bool:
    with transaction.atomic():
        reservation = _locked(pk)
        if reservation.released:
            return False
        if reservation.status in HOLDING_STATES:
            reservation.status = R.CLOSED
        reservation.released = True
        reservation.save(update_fields=["status", "released", "updated"])
    destroyed = destroy_labs_of(reservation, now=now)
    notify.publish_ended(reservation, destroyed=destroyed)
    return True


def destroy_labs_of(
    reservation: Reservation, *, now: datetime, unless_still_held: bool = True
) -> list[int]:
    """The hook that takes the owner's labs on the host down once the reservation is
    over, through the deployments' own destroy; nothing when the owner holds another
    reservation of the host right now (a booking that follows on), unless an admin asks
    (`unless_still_held=False`). Returns the deployments sent to destruction."""
    owner, host = reservation.owner, reservation.host
    held = selectors.reservation_active_for(user=owner, host=host, at=now) is not None
    if held and unless_still_held:
        return []
    kept = Deployment.objects.filter(
        owner=owner, host=host, status__in=sorted(KEPT_STATES)
    ).select_related("lab")
    destroyed: list[int] = []
    for lab in {d.lab_id: d.lab for d in kept}.values():
        try:
            deployment = deployments.deployment_destroy_lab(lab=lab, actor=owner)
        except ApplicationError as exc:
            _note_error(reservation, f"Could not destroy {lab.name!r}: {exc.message}")
        else:
            destroyed.append(deployment.pk)
    return sorted(destroyed)


# --- helpers ----------------------------------------------------------------------------


def _locked(pk: int) -> Reservation:
    return (
        Reservation.objects.select_for_update(of=("self",))
        .select_related("host", "owner", "auto_deploy")
        .get(pk=pk)
    )


def _note_error(reservation: Reservation, message: str) -> None:
    reservation.last_error = message
    reservation.save(update_fields=["last_error", "updated"])
