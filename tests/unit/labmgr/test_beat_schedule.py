"""The periodic work beat runs: every app's housekeeping is on the schedule."""

from __future__ import annotations

from labmgr.celery import app


def test_beat_runs_every_housekeeping_task() -> None:
    app.loader.import_default_modules()  # what beat does before it reads the schedule
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}

    assert {
        "labmgr.control.hosts_check",
        "labmgr.control.drift_check",
        "labmgr.control.metrics_retention",
        "labmgr.control.reservations_tick",
        "labmgr.control.captures_expire",
    } <= scheduled
    registered = set(app.tasks)
    assert scheduled <= registered, scheduled - registered
