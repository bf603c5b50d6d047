"""Control tasks about deployments: what agents report, and the beat's drift check.

Thin over the services, which make every report idempotent.
"""

from __future__ import annotations

from typing import Any

from labmgr.celery import app
from labmgr.deployments import reconcile, services


@app.task(name="labmgr.control.deployment_step")
def deployment_step(
    *,
    deployment: int,
    seq: int,
    total: int,
    name: str,
    target: str,
    status: str,
    message: str,
    seconds: float,
    host: str = "",
) -> None:
    services.deployment_step_record(
        deployment_id=deployment,
        seq=seq,
        total=total,
        name=name,
        target=target,
        status=status,
        message=message,
        seconds=seconds,
        host=host,
    )


@app.task(name="labmgr.control.deployment_result")
def deployment_result(
    *,
    deployment: int,
    action: str,
    ok: bool,
    error: str,
    nodes: list[dict[str, Any]],
    host: str = "",
) -> None:
    services.deployment_result_record(
        deployment_id=deployment, action=action, ok=ok, error=error, nodes=nodes, host=host
    )


@app.task(name="labmgr.control.drift")
def drift(*, deployment: int, missing: list[str], extra: list[str], host: str = "") -> None:
    services.deployment_drift_record(
        deployment_id=deployment, missing=missing, extra=extra, host=host
    )


@app.task(name="labmgr.control.drift_check")
def drift_check() -> None:
    reconcile.deployments_check_drift()
