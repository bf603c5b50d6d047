"""The deployment's status machine: every status change goes through here.

`deployment_transition` (what users ask) and `deployment_advance` (what agents and the
beat report, which may come twice or late) lock the row, check the transitions table
(`choices.ALLOWED_TRANSITIONS`) against the status in the database, log the change as a
step and publish `deployment.status`.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from labmgr import events
from labmgr.deployments.choices import (
    ALLOWED_TRANSITIONS,
    FINISHED_STATES,
    DeploymentStatus,
    StepStatus,
)
from labmgr.deployments.models import Deployment
from labmgr.deployments.services.create import deployment_step_add
from labmgr.errors import Conflict

S = DeploymentStatus


def deployment_transition(
    *, deployment: Deployment, to: DeploymentStatus | str, reason: str = ""
) -> Deployment:
    """Move the deployment to status `to` if the transitions table allows it from the
    status it has in the database (locked, so two workers cannot both move it)."""
    target = DeploymentStatus(to)
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        current = DeploymentStatus(locked.status)
        if target not in ALLOWED_TRANSITIONS[current]:
            raise Conflict.for_field(
                "status", f"A {current.label.lower()} deployment cannot become {target.value}."
            )
        _move(locked, current, target, reason)
    deployment.status, deployment.finished = locked.status, locked.finished
    deployment.unknown_from, deployment.updated = locked.unknown_from, locked.updated
    return deployment


def deployment_advance(
    *, deployment_id: int, to: DeploymentStatus, reason: str = "", only_from: frozenset[str]
) -> bool:
    """Move to `to` if the deployment is in one of `only_from` and the table allows it;
    False (and nothing changed) otherwise. The form reports from agents and beat tasks
    use, which may arrive twice or late."""
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if locked is None:
            return False
        current = DeploymentStatus(locked.status)
        if current not in only_from or to not in ALLOWED_TRANSITIONS[current]:
            return False
        _move(locked, current, to, reason)
    return True


def deployment_status_publish(*, deployment: Deployment, reason: str) -> None:
    """Tell the lab's browsers the deployment's status (and drift), after commit."""
    events.publish(
        [events.lab_group(deployment.lab_id)],
        {
            "type": "deployment.status",
            "lab": deployment.lab_id,
            "deployment": deployment.pk,
            "status": DeploymentStatus(deployment.status).value,
            "reason": reason,
            "host": deployment.host.slug if deployment.host else None,
            "drift": deployment.drift,
        },
    )


def _move(
    locked: Deployment, current: DeploymentStatus, target: DeploymentStatus, reason: str
) -> None:
    locked.status = target
    fields = ["status", "unknown_from", "updated"]
    locked.unknown_from = current if target == S.UNKNOWN else ""
    if target in FINISHED_STATES:
        locked.finished = timezone.now()
        fields.append("finished")
    locked.save(update_fields=fields)
    if target in (S.DESTROYED, S.CANCELLED):
        # Nothing of it is left in any kernel: its VNIs are free for others.
        locked.vnis.all().delete()
    message = f"{current.value} -> {target.value}" + (f": {reason}" if reason else "")
    deployment_step_add(
        deployment=locked, name="status", status=StepStatus.SUCCEEDED, message=message
    )
    deployment_status_publish(deployment=locked, reason=reason)
