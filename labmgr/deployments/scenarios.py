"""Scenario runs (docs/live.md): a scenario's steps run against a running deployment at
their times, by the control plane's beat (`labmgr.control.scenarios_tick`, every
second), so closing the browser stops nothing. Run, pause, resume and stop come from the
lab page, the API or the command line; each step's outcome is kept on the run (a live
change's words, a command's exit and output, a check's matrix) and published to the
lab's viewers, whose charts mark it.

A run ends finished (its last step ran), or stopped: by its user, who gets the lab
restored to its labfile, or because the lab stopped running (destroyed: nothing to
restore). A step that fails is a result, not the run's end.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from labmgr import events
from labmgr.deployments import connectivity, lifecycle
from labmgr.deployments import live as live_changes
from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.models import Deployment, ScenarioRun
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.labs import selectors as lab_selectors
from labplan import labfile as labfile_module
from labplan import live, scenarios
from labplan.errors import LabfileError

log = logging.getLogger(__name__)

R = ScenarioRun.State
ACTIVE = (R.RUNNING, R.PAUSED)
OUTPUT_KEPT = 4000  # characters of a command's output a result keeps
ADHOC = "adhoc"  # the name of a run whose steps were sent with it


def scenario_start(
    *,
    deployment: Deployment,
    actor: User,
    name: str | None = None,
    steps: object = None,
) -> ScenarioRun:
    """Start the lab's scenario `name`, or the `steps` sent (labfile form), on the
    running deployment; one run at a time per deployment."""
    _require_change(actor, deployment)
    if deployment.status != DeploymentStatus.RUNNING:
        raise Conflict.for_field(
            "status", f"Scenarios run only on a running lab; this one is {deployment.status}."
        )
    try:
        model = labfile_module.validate(deployment.labfile)
    except LabfileError as exc:
        raise ApplicationError(f"The deployment's labfile no longer validates: {exc}") from None
    if steps is not None:
        checked, errors = scenarios.check_run(model, steps)
        if errors:
            raise ApplicationError(str(errors[0]), {e.path or "steps": [e.message] for e in errors})
        run_name = name or ADHOC
    else:
        found = next((s for s in model.scenarios if s.name == name), None)
        if found is None:
            have = ", ".join(s.name for s in model.scenarios) or "none"
            raise ApplicationError.for_field(
                "scenario", f"The lab has no scenario {name!r} (its scenarios: {have})."
            )
        checked, run_name = found.steps, found.name
    with transaction.atomic():
        locked = Deployment.objects.select_for_update(of=("self",)).get(pk=deployment.pk)
        active = locked.scenario_runs.filter(state__in=ACTIVE).first()
        if active is not None:
            raise Conflict.for_field(
                "scenario",
                f"Scenario {active.name!r} is {active.state} on this lab: stop it first.",
            )
        run = ScenarioRun.objects.create(
            deployment=locked,
            name=run_name,
            steps=[{"at": step.at / 1e6, "action": step.data} for step in checked],
            actor=actor,
            resumed=now(),
        )
        _publish(run)
    return run


def scenario_pause(*, run: ScenarioRun, actor: User) -> ScenarioRun:
    """Hold the run's clock: no step runs until it resumes."""
    return _clock(run, actor, R.RUNNING, R.PAUSED)


def scenario_resume(*, run: ScenarioRun, actor: User) -> ScenarioRun:
    return _clock(run, actor, R.PAUSED, R.RUNNING)


def _clock(run: ScenarioRun, actor: User, was: str, to: str) -> ScenarioRun:
    """Pause (RUNNING to PAUSED: the time so far kept) or resume (its clock going on)."""
    _require_change(actor, run.deployment)
    with transaction.atomic():
        locked = _locked(run)
        if locked.state != was:
            verb = "pauses" if to == R.PAUSED else "resumes"
            said = f"Only a {was} scenario {verb}; this one is {locked.state}."
            raise Conflict.for_field("state", said)
        locked.elapsed = offset(locked)
        locked.resumed = now() if to == R.RUNNING else None
        locked.state = to
        locked.save(update_fields=["elapsed", "resumed", "state"])
        _publish(locked)
    return locked


def scenario_stop(*, run: ScenarioRun, actor: User) -> ScenarioRun:
    """Stop the run and restore the lab to its labfile (a result of its own)."""
    _require_change(actor, run.deployment)
    with transaction.atomic():
        locked = _locked(run)
        if locked.state not in ACTIVE:
            raise Conflict.for_field("state", f"This scenario has ended ({locked.state}).")
        _end(locked, R.STOPPED, f"stopped by {actor.get_username()}")
    deployment = Deployment.objects.get(pk=run.deployment_id)
    if (
        deployment.status == DeploymentStatus.RUNNING
        and not live.State.from_dict(deployment.live).empty
    ):
        restore = {"restore": "all"}
        result = _live_step(deployment, actor, restore)
        _record(
            locked.pk, {"index": None, "at": None, "action": restore, "time": time.time(), **result}
        )
    locked.refresh_from_db()
    _publish(locked)
    return locked


def scenarios_end(*, deployment: Deployment, reason: str) -> None:
    """End the deployment's active runs (it is being destroyed: nothing to restore)."""
    for run in deployment.scenario_runs.filter(state__in=ACTIVE):
        with transaction.atomic():
            locked = _locked(run)
            if locked.state in ACTIVE:
                _end(locked, R.STOPPED, reason)
                _publish(locked)


def scenarios_tick() -> int:
    """Run every running scenario's steps that are due; the number run."""
    ran = 0
    for run_id in ScenarioRun.objects.filter(state=R.RUNNING).values_list("pk", flat=True):
        try:
            ran += _advance(run_id)
        except Exception:  # one run's bug must not stop the others
            log.exception("scenario run %s could not advance", run_id)
    return ran


def now() -> datetime:
    """The scenarios' clock (tests move it)."""
    return timezone.now()


def offset(run: ScenarioRun) -> float:
    """The run's time: seconds since it started, pauses left out."""
    if run.resumed is None:
        return run.elapsed
    return run.elapsed + (now() - run.resumed).total_seconds()


def run_document(run: ScenarioRun) -> dict[str, Any]:
    """The run as the API, the events and the export show it."""
    return {
        "id": run.pk,
        "deployment": run.deployment_id,
        "lab": run.deployment.lab_id,
        "name": run.name,
        "state": run.state,
        "actor": run.actor.get_username() if run.actor else "",
        "steps": run.steps,
        "position": run.position,
        "offset": round(offset(run), 3),
        "running_since": run.resumed.timestamp() if run.resumed else None,
        "elapsed": run.elapsed,
        "results": run.results,
        "reason": run.reason,
        "created": run.created.isoformat(),
        "finished": run.finished.isoformat() if run.finished else None,
    }


# --- helpers ---------------------------------------------------------------------------


def _advance(run_id: int) -> int:
    """Run the steps of one run that are due, in order; each is claimed first, so two
    ticks never run the same step."""
    ran = 0
    while True:
        run = ScenarioRun.objects.select_related("deployment", "actor").get(pk=run_id)
        if run.state != R.RUNNING:
            return ran
        deployment = run.deployment
        if deployment.status != DeploymentStatus.RUNNING or run.actor is None:
            with transaction.atomic():
                locked = _locked(run)
                if locked.state == R.RUNNING:
                    why = (
                        "its user is gone"
                        if run.actor is None
                        else f"the lab is {deployment.status}"
                    )
                    _end(locked, R.STOPPED, why)
                    _publish(locked)
            return ran
        index = run.position
        if index >= len(run.steps):
            with transaction.atomic():
                locked = _locked(run)
                if locked.state == R.RUNNING:
                    _end(locked, R.FINISHED, "")
                    _publish(locked)
            return ran
        step = run.steps[index]
        if float(step["at"]) > offset(run):
            return ran
        claimed = ScenarioRun.objects.filter(pk=run_id, position=index, state=R.RUNNING).update(
            position=index + 1
        )
        if not claimed:
            return ran
        result = _run_step(deployment, run.actor, dict(step["action"]))
        _record(run_id, {"index": index, "at": step["at"], **result})
        ran += 1


def _run_step(deployment: Deployment, actor: User, action: dict[str, Any]) -> dict[str, Any]:
    verb = next(iter(action))
    began = time.time()
    try:
        if verb == "exec":
            spec = action["exec"]
            answer = lifecycle.deployment_exec(
                deployment=deployment,
                actor=actor,
                node=str(spec["node"]),
                argv=[str(word) for word in spec["command"]],
                timeout=float(spec.get("timeout", 10)),
            )
            output = (answer["stdout"] + answer["stderr"])[-OUTPUT_KEPT:]
            result = {
                "ok": answer["exit"] == 0,
                "message": f"{spec['node']}: {' '.join(spec['command'])} exited {answer['exit']}",
                "output": output,
            }
        elif verb == "check":
            report = connectivity.deployment_connectivity(deployment=deployment, actor=actor)
            wrong = [p for p in report["probes"] if p["reachable"] != p["expected"]]
            reached = sum(p["reachable"] for p in report["probes"])
            result = {
                "ok": not wrong,
                "message": f"connectivity: {reached} of {len(report['probes'])} probes answered, "
                f"{len(wrong)} not as the lab expects",
                "matrix": report["probes"],
            }
        else:
            return {"action": action, "time": began, **_live_step(deployment, actor, action)}
    except ApplicationError as exc:
        result = {"ok": False, "message": exc.message}
    except Exception as exc:  # a bug: said in the result and the log, the run goes on
        log.exception("scenario step %s on deployment %s", action, deployment.pk)
        result = {"ok": False, "message": f"the step could not run: {type(exc).__name__}"}
    return {"action": action, "time": began, **result}


def _live_step(deployment: Deployment, actor: User, action: dict[str, Any]) -> dict[str, Any]:
    try:
        outcome = live_changes.deployment_live(deployment=deployment, actor=actor, action=action)
    except ApplicationError as exc:
        said = "; ".join(
            f"{k}: {' '.join(v)}" for k, v in exc.errors.items() if exc.message not in v
        )
        return {"ok": False, "message": exc.message + (f" ({said})" if said else "")}
    return {"ok": True, "message": outcome["action"], "seconds": outcome["seconds"]}


def _record(run_id: int, result: dict[str, Any]) -> None:
    with transaction.atomic():
        run = ScenarioRun.objects.select_for_update().select_related("deployment").get(pk=run_id)
        run.results = [*run.results, result]
        run.save(update_fields=["results"])
        _publish(run, result)


def _end(run: ScenarioRun, state: str, reason: str) -> None:
    run.elapsed = offset(run)
    run.resumed = None
    run.state = state
    run.reason = reason[:200]
    run.finished = now()
    run.save(update_fields=["elapsed", "resumed", "state", "reason", "finished"])


def _locked(run: ScenarioRun) -> ScenarioRun:
    return (
        ScenarioRun.objects.select_for_update(of=("self",))
        .select_related("deployment", "actor")
        .get(pk=run.pk)
    )


def _require_change(actor: User, deployment: Deployment) -> None:
    if not lab_selectors.lab_can_change(user=actor, lab=deployment.lab):
        raise NotAllowed("This lab is shared with you to read; only its owner may run scenarios.")


def _publish(run: ScenarioRun, result: dict[str, Any] | None = None) -> None:
    events.publish(
        [events.lab_group(run.deployment.lab_id)],
        {
            "type": "scenario.progress",
            "lab": run.deployment.lab_id,
            "deployment": run.deployment_id,
            "run": run_document(run),
            "result": result,
        },
    )
