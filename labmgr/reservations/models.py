"""A reservation: who holds which host, from when to when, and how much of it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.reservations.choices import ReservationStatus


class Reservation(models.Model):
    """A booking of `host` from `start` (included) to `end` (excluded): the whole host, or
    a share of its CPUs, memory and processes. Written only by the reservation services,
    which check the host's capacity with the host row locked."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reservations"
    )
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="reservations")
    start = models.DateTimeField()
    end = models.DateTimeField()
    whole_host = models.BooleanField(default=False)
    # The share; all zero for a whole-host booking (which holds all of the host).
    cpus = models.DecimalField(max_digits=8, decimal_places=3, default=0)
    memory = models.PositiveBigIntegerField(default=0, help_text="bytes")
    pids = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.SCHEDULED
    )
    note = models.CharField(max_length=200, blank=True, default="")
    # Deployed for the owner when the reservation starts, if set.
    auto_deploy = models.ForeignKey(
        Lab, on_delete=models.SET_NULL, null=True, blank=True, related_name="reservations"
    )
    # Who made the booking, when not the owner (an admin booking for someone).
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reservations_booked",
    )
    # Whether an admin booked it past the host's capacity.
    overridden = models.BooleanField(default=False)
    # The end each warning was sent for: a warning is due again after an extension.
    warned_for = models.DateTimeField(null=True, blank=True)
    final_warned_for = models.DateTimeField(null=True, blank=True)
    # Whether the beat has taken down the owner's labs after the end (or found nothing to
    # take down: a reservation cancelled before it began holds no lab).
    released = models.BooleanField(default=False)
    # When it was cancelled (on the reservations' clock): one cancelled while it ran
    # counts in its owner's weekly hours for the time it ran.
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # What went wrong the last time the beat acted on it (auto-deploy, destroy).
    last_error = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start", "id"]
        indexes = [models.Index(fields=["host", "end", "start"], name="reservations_host_window")]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")), name="reservations_end_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.host} for {self.owner}, {self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M}"


class ReservationPolicy(models.Model):
    """What a user who is not an admin may book: one row for the whole site (the rules
    are about people sharing the servers, and a weekly allowance is a person's, not a
    machine's). Until an admin saves it in the admin panel, the LABMGR_RESERVATION_MAX_*
    settings hold; a bound left empty is no bound."""

    # Always 1: there is one policy.
    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    max_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="the longest booking, in hours; empty: no limit"
    )
    max_days_ahead = models.PositiveIntegerField(
        null=True, blank=True, help_text="days ahead a booking may start; empty: no limit"
    )
    weekly_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="hours a user may book a week (Mon-Sun UTC); empty: no limit",
    )
    max_bookings = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="bookings a user holds not ended yet, all hosts; empty: no limit",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "reservation policy"
        verbose_name_plural = "reservation policy"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="reservations_one_policy")]

    def __str__(self) -> str:
        return "Reservation policy"


class HostReserve(models.Model):
    """What labs may never take of a host's machine, kept for labmgr itself (agent, web,
    database) and the host's own processes. A host without one keeps the
    LABMGR_HOST_RESERVE_* settings' reserve; a kind left empty keeps that setting's."""

    host = models.OneToOneField(Host, on_delete=models.CASCADE, related_name="reserve")
    cpus = models.DecimalField(
        max_digits=8,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="CPUs kept back; empty: LABMGR_HOST_RESERVE_CPUS (10%)",
    )
    memory = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="bytes kept back; empty: LABMGR_HOST_RESERVE_MEMORY (512M)",
    )
    pids = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="process ids kept back; empty: LABMGR_HOST_RESERVE_PIDS (1024)",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["host__name"]

    def __str__(self) -> str:
        return f"Reserve of {self.host}"
