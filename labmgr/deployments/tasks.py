"""Control tasks about deployments: what agents report, and the beat's drift check.

Thin over the services, which make every report idempotent. A report counts only when
the host that signed it (labmgr.hosts.trust) holds a part of the deployment it names:
one host cannot speak for another's lab.
"""

from __future__ import annotations

import logging
from typing import Any, Unpack

from labmgr.celery import app
from labmgr.deployments import reconcile, scenarios, services
from labmgr.deployments.selectors import deployment_placed_on
from labmgr.hosts.trust import agent_report
from labplan.messages import BeatTask, ControlTask, StepArgs

log = logging.getLogger(__name__)

# Scenario steps run at their second, whoever watches (docs/live.md).
app.conf.beat_schedule.setdefault(
    "scenarios-tick",
    {"task": str(BeatTask.SCENARIOS_TICK), "schedule": 1.0},
)


def _from_its_host(deployment: int, host: str, what: str) -> bool:
    if not host or deployment_placed_on(deployment_id=deployment, slug=host):
        return True
    log.warning(
        "refused a %s for deployment %s from host %s, which has no part of it",
        what,
        deployment,
        host,
    )
    return False


@agent_report(ControlTask.DEPLOYMENT_STEP)
def deployment_step(*, host: str = "", **report: Unpack[StepArgs]) -> None:
    if not _from_its_host(report["deployment"], host, "step"):
        return
    services.deployment_step_record(report, host=host)


@agent_report(ControlTask.DEPLOYMENT_RESULT)
def deployment_result(
    *,
    deployment: int,
    action: str,
    ok: bool,
    error: str,
    nodes: list[dict[str, Any]],
    host: str = "",
    images: object = None,
) -> None:
    if not _from_its_host(deployment, host, "result"):
        return
    services.deployment_result_record(
        deployment_id=deployment,
        action=action,
        ok=ok,
        error=error,
        nodes=nodes,
        host=host,
        images=images,
    )


@agent_report(ControlTask.DRIFT)
def drift(*, deployment: int, missing: list[str], extra: list[str], host: str = "") -> None:
    if not _from_its_host(deployment, host, "drift report"):
        return
    services.deployment_drift_record(
        deployment_id=deployment, missing=missing, extra=extra, host=host
    )


@app.task(name=str(BeatTask.DRIFT_CHECK))
def drift_check() -> None:
    reconcile.deployments_check_drift()


@app.task(name=str(BeatTask.SCENARIOS_TICK))
def scenarios_tick() -> None:
    scenarios.scenarios_tick()
