"""The reservations' beat task, thin over `lifecycle.reservations_tick`."""

from __future__ import annotations

from django.conf import settings

from labmgr.celery import app
from labmgr.reservations import lifecycle

# Scheduled from here so the app owns its beat entry; beat imports every app's tasks
# module before it reads the schedule.
app.conf.beat_schedule.setdefault(
    "reservations-tick",
    {
        "task": "labmgr.control.reservations_tick",
        "schedule": settings.LABMGR_RESERVATION_TICK_EVERY,
    },
)


@app.task(name="labmgr.control.reservations_tick")
def reservations_tick() -> dict[str, list[int]]:
    report = lifecycle.reservations_tick()
    return {"started": report.started, "warned": report.warned, "ended": report.ended}
