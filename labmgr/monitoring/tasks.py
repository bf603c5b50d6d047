"""Control tasks about metrics: an agent's batch, and the beat's retention pass."""

from __future__ import annotations

from typing import Any

from labmgr.celery import app
from labmgr.hosts.trust import agent_report
from labmgr.monitoring.services import metrics_downsample, metrics_record
from labplan.messages import BeatTask, ControlTask


@agent_report(ControlTask.METRICS)
def metrics(*, host: str, sent: float, samples: list[dict[str, Any]]) -> None:
    metrics_record(host=host, samples=samples)


@app.task(name=str(BeatTask.METRICS_RETENTION))
def metrics_retention() -> None:
    metrics_downsample()
