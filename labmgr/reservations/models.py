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
