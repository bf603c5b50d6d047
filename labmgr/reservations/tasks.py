"""The reservations' beat task, thin over `lifecycle.reservations_tick`."""

from __future__ import annotations

from django.conf import settings

from labmgr.celery import app
from labmgr.reservations import lifecycle
from labplan.messages import BeatTask

# Scheduled from here so the app owns its beat entry; beat imports every app's tasks
# module before it reads the schedule.
app.conf.beat_schedule.setdefault(
    "reservations-tick",
    {
        "task": str(BeatTask.RESERVATIONS_TICK),
        "schedule": settings.LABMGR_RESERVATION_TICK_EVERY,
    },
)


@app.task(name=str(BeatTask.RESERVATIONS_TICK))
def reservations_tick() -> dict[str, list[int]]:
    report = lifecycle.reservations_tick()
    return {"started": report.started, "warned": report.warned, "ended": report.ended}
