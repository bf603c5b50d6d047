"""The reservations' one clock. Tests set the time here instead of waiting for it."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
