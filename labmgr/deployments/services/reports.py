"""Ingesting what agents report: steps, results (of a deployment on one host or on
several), the nodes they observed, and drift.

Every report is idempotent: a duplicate delivery, or a report that no longer fits the
deployment's status, changes nothing. A report moves the status machine only through
`deployment_advance`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from labmgr import events
from labmgr.deployments.choices import DeploymentStatus, StepStatus, step_status_from_agent
from labmgr.deployments.models import Deployment, DeploymentHost, DeploymentNode, DeploymentStep
from labmgr.deployments.services.create import deployment_step_add
from labmgr.deployments.services.jobs import deployment_hosts_destroy
from labmgr.deployments.services.status import deployment_advance, deployment_status_publish
from labmgr.images.facts import run_digests
from labplan.messages import STEP_RUNNING, StepArgs

log = logging.getLogger(__name__)

S = DeploymentStatus
NOTE_LENGTH = 1000  # characters of an agent's note about a node that are kept


def deployment_step_record(report: StepArgs, *, host: str = "") -> DeploymentStep | None:
    """Store a step the agent of `host` reported (once, however often it is delivered)
    and publish it. The first news of a pending deployment means its agent has started:
    DEPLOYING.

    A `running` report (an image pull's progress: "3/5 layers, 12.3 MB") is one row under
    its number, updated in place by its later reports and then by its end (done, failed);
    a report older than what the row already says (fewer seconds, or after its end)
    changes nothing."""
    deployment_id, seq, message = report["deployment"], report["seq"], report["message"]
    status: str = report["status"]
    step_status = step_status_from_agent(status)
    if step_status is None:  # a word no agent uses: shown as it came, as a bug's step
        step_status, message = StepStatus.ERRORED, f"[{status}] {message}"
    running = status.lower() == STEP_RUNNING
    _agent_started(deployment_id)
    try:
        with transaction.atomic():
            locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
            if locked is None:
                log.warning("step %s for unknown deployment %s ignored", seq, deployment_id)
                return None
            reported = locked.steps.filter(host=host[:50], job=locked.job, agent_seq=seq)
            if reported.filter(status=step_status).exclude(status=StepStatus.STARTED).exists():
                return None
            progress = reported.filter(status=StepStatus.STARTED).first()
            if progress is not None and (running or step_status == StepStatus.STARTED):
                if (report["seconds"] or 0) < (progress.seconds or 0):
                    return None  # an older progress report, delivered late
                if progress.message == message and progress.seconds == report["seconds"]:
                    return None  # the same report again
            elif running and reported.exists():
                return None  # progress of a step that has ended
            if progress is not None:
                step = _step_update(progress, report, step_status, message)
            else:
                step = deployment_step_add(
                    deployment=locked,
                    name=report["name"][:100],
                    status=step_status,
                    message=message,
                    host=host[:50],
                    job=locked.job,
                    agent_seq=seq,
                    total=report["total"],
                    target=report["target"][:200],
                    seconds=report["seconds"],
                )
            locked.heard = timezone.now()
            locked.save(update_fields=["heard", "updated"])
    except IntegrityError:
        return None  # the same step, delivered twice at once: the other delivery stored it
    events.publish(
        [events.lab_group(locked.lab_id)],
        {
            "type": "deployment.step",
            "lab": locked.lab_id,
            "deployment": locked.pk,
            "seq": step.seq,
            "name": step.name,
            "target": step.target,
            "status": step.status,
            "message": step.message,
            "total": step.total,
            "seconds": step.seconds,
            "host": step.host or None,
            "actor": step.actor,
        },
    )
    return step


def _step_update(
    step: DeploymentStep, report: StepArgs, status: StepStatus, message: str
) -> DeploymentStep:
    """A step under way, told how far it got (or that it ended): the same row, which the
    lab page updates in place (it keeps its `seq`)."""
    step.status = status
    step.message = message
    step.name = report["name"][:100]
    step.target = report["target"][:200]
    step.total = report["total"]
    step.seconds = report["seconds"]
    step.save(update_fields=["status", "message", "name", "target", "total", "seconds"])
    return step


def deployment_result_record(
    *,
    deployment_id: int,
    action: str,
    ok: bool,
    error: str,
    nodes: list[dict[str, Any]],
    host: str = "",
    images: object = None,
) -> bool:
    """Move the status machine on the result of the agent of `host`; True when it
    changed something. An apply's `images` (reference -> the manifest digest its nodes
    ran) are merged into `Deployment.images`, the pins of the next redeploy.

    An apply result counts while the deployment is being deployed, a destroy result while
    it is being destroyed; anything else is a duplicate or overtaken (e.g. a cancel), and
    changes nothing. A deployment placed on several hosts waits for each one's result
    (`_spread_result_record`).
    """
    if host and action in ("apply", "destroy") and _spread(deployment_id):
        return _spread_result_record(
            deployment_id=deployment_id,
            host=host,
            action=action,
            ok=ok,
            error=error,
            nodes=nodes,
            images=images,
        )
    reason = error or ""
    if action == "apply":
        _agent_started(deployment_id)
        target = S.RUNNING if ok else S.FAILED
        accepted = frozenset({S.DEPLOYING, S.UNKNOWN})
    elif action == "destroy":
        target = S.DESTROYED if ok else S.FAILED
        accepted = frozenset({S.DESTROYING, S.UNKNOWN})
    else:
        log.warning("result of unknown action %r for deployment %s", action, deployment_id)
        return False
    with transaction.atomic():
        changed = deployment_advance(
            deployment_id=deployment_id, to=target, reason=reason, only_from=accepted
        )
        if changed and action == "apply" and ok:
            deployment_nodes_store(deployment_id=deployment_id, nodes=nodes, host=host)
            deployment_images_store(deployment_id=deployment_id, images=images)
    return changed


def _agent_started(deployment_id: int) -> None:
    """A pending deployment whose apply result arrives before its first step was processed
    has been started by its agent: DEPLOYING first, so the result finds it there."""
    deployment_advance(
        deployment_id=deployment_id,
        to=S.DEPLOYING,
        reason="the agent started",
        only_from=frozenset({S.PENDING}),
    )


def _spread(deployment_id: int) -> bool:
    return DeploymentHost.objects.filter(deployment_id=deployment_id).count() > 1


def _spread_result_record(
    *,
    deployment_id: int,
    host: str,
    action: str,
    ok: bool,
    error: str,
    nodes: list[dict[str, Any]],
    images: object = None,
) -> bool:
    """One host's result for a deployment placed on several: stored once, for the job it
    was sent last. RUNNING once every host applied its part, DESTROYED once every host
    destroyed it. A failed apply fails the deployment and sends every host a destroy, so
    no part of a half-built lab is left on any host."""
    if action == "apply":
        _agent_started(deployment_id)
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if locked is None:
            return False
        placements = list(locked.placements.select_related("host"))
        mine = next((p for p in placements if p.host.slug == host), None)
        if mine is None or mine.action != action or mine.ok is not None:
            return False  # not awaited: delivered twice, or overtaken by a later job
        mine.ok, mine.error = ok, error
        mine.save(update_fields=["ok", "error"])
        locked.heard = timezone.now()
        locked.save(update_fields=["heard", "updated"])
        if action == "apply" and ok:
            deployment_nodes_store(deployment_id=deployment_id, nodes=nodes, host=host, spread=True)
            deployment_images_store(deployment_id=deployment_id, images=images)
        if not ok:
            return _spread_failed(locked, placements, host=host, action=action, error=error)
        if any(p.ok is not True for p in placements):
            return True  # stored; other hosts are still at work
        done = S.RUNNING if action == "apply" else S.DESTROYED
        wanted = S.DEPLOYING if action == "apply" else S.DESTROYING
        return deployment_advance(
            deployment_id=deployment_id,
            to=done,
            reason=f"every host ({', '.join(p.host.slug for p in placements)}) is done",
            only_from=frozenset({wanted, S.UNKNOWN}),
        )


def _spread_failed(
    locked: Deployment, placements: list[DeploymentHost], *, host: str, action: str, error: str
) -> bool:
    wanted = S.DEPLOYING if action == "apply" else S.DESTROYING
    reason = f"host {host}: {error}" if error else f"host {host} failed"
    if action == "apply":
        reason += "; every host removes its part"
    failed = deployment_advance(
        deployment_id=locked.pk,
        to=S.FAILED,
        reason=reason,
        only_from=frozenset({wanted, S.UNKNOWN}),
    )
    if failed and action == "apply":
        deployment_hosts_destroy(deployment=locked, placements=placements)
    return failed


def deployment_nodes_store(
    *, deployment_id: int, nodes: list[dict[str, Any]], host: str = "", spread: bool = False
) -> None:
    """Replace the record of the deployment's nodes (`spread`, on a deployment placed on
    several hosts: of its nodes on `host`) with what the agent of `host` observed."""
    stored = DeploymentNode.objects.filter(deployment_id=deployment_id)
    if not host:  # an agent that does not say which host it is: the deployment's one
        host = (
            Deployment.objects.filter(pk=deployment_id).values_list("host__slug", flat=True).first()
            or ""
        )
    if spread:
        stored = stored.filter(host=host)
    stored.delete()
    DeploymentNode.objects.bulk_create(
        DeploymentNode(
            deployment_id=deployment_id,
            host=host[:50],
            name=str(node.get("name") or node.get("node") or "")[:31],
            pid=_int_or_none(node.get("pid")),
            netns=str(node.get("netns") or "")[:15],
            interfaces=[
                _interface(i) for i in node.get("interfaces") or [] if isinstance(i, Mapping)
            ],
            note=str(node.get("note") or "")[:NOTE_LENGTH],
        )
        for node in nodes
        if isinstance(node, Mapping)
    )


def deployment_images_store(*, deployment_id: int, images: object) -> None:
    """Merge the digests an apply ran (`images`, reference -> digest) into the deployment's
    record: each host's part adds its own; a reference run again takes its new digest."""
    digests = run_digests(images)
    if not digests:
        return
    locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
    if locked is None:
        return
    merged = {**(locked.images if isinstance(locked.images, dict) else {}), **digests}
    if merged != locked.images:
        locked.images = dict(sorted(merged.items()))
        locked.save(update_fields=["images", "updated"])


def _interface(data: Mapping[str, Any]) -> dict[str, Any]:
    addresses = data.get("addresses") or []
    return {
        "ifname": str(data.get("ifname") or data.get("name") or ""),
        "mac": str(data.get("mac") or ""),
        "addresses": [str(a) for a in addresses] if isinstance(addresses, list) else [],
    }


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def _drift_merged(locked: Deployment, host: str, found: dict[str, list[str]]) -> dict[str, Any]:
    if not _spread(locked.pk):
        return found
    previous = locked.drift if isinstance(locked.drift, dict) else {}
    by_host = {**(previous.get("hosts") or {}), host: found}
    return {
        "missing": sorted({m for h in by_host.values() for m in h["missing"]}),
        "extra": sorted({e for h in by_host.values() for e in h["extra"]}),
        "hosts": by_host,
    }


def deployment_drift_record(
    *, deployment_id: int, missing: list[str], extra: list[str], host: str = ""
) -> bool:
    """Store what the agent of `host` found missing or extra in the kernel and publish
    it. On a deployment placed on several hosts each host's findings are kept under
    `hosts` and `missing`/`extra` are their union."""
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if locked is None:
            return False
        found = {"missing": sorted(map(str, missing)), "extra": sorted(map(str, extra))}
        locked.drift = _drift_merged(locked, host, found) if host else found
        locked.drift_checked = locked.heard = timezone.now()
        locked.save(update_fields=["drift", "drift_checked", "heard", "updated"])
        deployment_status_publish(deployment=locked, reason="drift checked")
    return True
