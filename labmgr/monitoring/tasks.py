"""Control tasks about metrics: an agent's batch, and the beat's retention pass."""

from __future__ import annotations

from typing import Any

from labmgr.celery import app
from labmgr.hosts.trust import agent_report
from labmgr.monitoring.services import metrics_downsample, metrics_record


@agent_report("labmgr.control.metrics")
def metrics(*, host: str, sent: float, samples: list[dict[str, Any]]) -> None:
    metrics_record(host=host, samples=samples)


@app.task(name="labmgr.control.metrics_retention")
def metrics_retention() -> None:
    metrics_downsample()
