"""Capture settings: a Django setting of the same name wins over the environment, which
wins over the default (sizes in bytes, times in seconds)."""

from __future__ import annotations

import os

from django.conf import settings

DEFAULTS: dict[str, int] = {
    # The bounds of one capture; a request may ask for less, never more.
    "LABMGR_CAPTURE_MAX_BYTES": 10 << 20,
    "LABMGR_CAPTURE_MAX_SECONDS": 600,
    # Captures running at once in one deployment.
    "LABMGR_CAPTURE_MAX_RUNNING": 4,
    # How long an ended capture and its pcap are kept.
    "LABMGR_CAPTURE_RETENTION": 7 * 24 * 3600,
}


def value(name: str) -> int:
    configured = getattr(settings, name, None)
    if configured is not None:
        return int(configured)
    return int(float(os.environ.get(name, DEFAULTS[name])))
