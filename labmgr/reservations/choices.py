"""Reservation states. Whether a booked reservation is running is a matter of the clock
(start <= now < end); the beat only records it (ACTIVE) and closes it at the end."""

from __future__ import annotations

from django.db import models


class ReservationStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


R = ReservationStatus

# States that hold part of the host: counted against its capacity.
HOLDING_STATES: frozenset[str] = frozenset({R.SCHEDULED, R.ACTIVE})
