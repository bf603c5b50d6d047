"""Control tasks about captures: what agents report, and the housekeeping."""

from __future__ import annotations

from labmgr.captures import services
from labmgr.celery import app
from labmgr.hosts.trust import agent_report
from labplan.messages import BeatTask, ControlTask

# The app owns its beat entry (as reservations do): expired pcaps and captures whose
# agent went silent are dropped even when nobody lists captures.
app.conf.beat_schedule.setdefault(
    "captures-expire",
    {"task": str(BeatTask.CAPTURES_EXPIRE), "schedule": 300.0},
)


@agent_report(ControlTask.CAPTURE_PROGRESS)
def capture_progress(*, capture: str, state: str, packets: int, bytes: int, host: str = "") -> None:
    if not services.capture_is_on(key=capture, host=host):
        return
    services.capture_progress_record(key=capture, packets=packets, bytes=bytes)


@agent_report(ControlTask.CAPTURE_FINISHED)
def capture_finished(
    *,
    capture: str,
    state: str,
    packets: int,
    bytes: int,
    reason: str,
    chunks: int,
    host: str = "",
    sha256: str | None = None,
) -> None:
    if not services.capture_is_on(key=capture, host=host):
        return
    services.capture_finished_record(
        sha256=sha256,
        key=capture,
        state=state,
        packets=packets,
        bytes=bytes,
        reason=reason,
        chunks=chunks,
    )


@app.task(name=str(BeatTask.CAPTURES_EXPIRE))
def captures_expire() -> None:
    services.captures_expire()
