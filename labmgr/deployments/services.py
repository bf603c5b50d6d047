"""Writes on deployments: creating the record from a lab, and its one status transition.

Nothing is dispatched to a host here yet; dispatch is a later seam (`dispatch.py`).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from labmgr.deployments.choices import (
    ALLOWED_TRANSITIONS,
    FINISHED_STATES,
    DeploymentStatus,
    StepStatus,
)
from labmgr.deployments.models import Deployment, DeploymentStep
from labmgr.errors import Conflict
from labmgr.hosts.models import Host
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labplan import codec, compiler, naming
from labplan import labfile as labfile_module

LOCAL_HOST = "local"


def deployment_create(*, lab: Lab, owner: Any, host: Host | None = None) -> Deployment:
    """A PENDING deployment holding a snapshot of the lab's labfile and its compiled plan.

    The plan names every kernel object after the deployment's id, so the row is created
    first and the plan filled in within the same transaction.
    """
    labfile = spec.lab_to_labfile(lab)
    with transaction.atomic():
        deployment = Deployment.objects.create(lab=lab, owner=owner, host=host)
        plan = compiler.compile_plan(
            labfile,
            deployment=deployment.pk,
            default_host=host.slug if host else LOCAL_HOST,
        )
        deployment.token = naming.deployment_token(deployment.pk)
        deployment.labfile = labfile_module.dump(labfile)
        deployment.plan = codec.plan_to_dict(plan)
        deployment.save(update_fields=["token", "labfile", "plan", "updated"])
        deployment_step_add(
            deployment=deployment,
            name="created",
            status=StepStatus.SUCCEEDED,
            message=f"Plan compiled for {host or LOCAL_HOST}.",
        )
    return deployment


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
        locked.status = target
        fields = ["status", "updated"]
        if target in FINISHED_STATES:
            locked.finished = timezone.now()
            fields.append("finished")
        locked.save(update_fields=fields)
        message = f"{current.value} -> {target.value}" + (f": {reason}" if reason else "")
        deployment_step_add(
            deployment=locked, name="status", status=StepStatus.SUCCEEDED, message=message
        )
    deployment.status, deployment.finished = locked.status, locked.finished
    deployment.updated = locked.updated
    return deployment


def deployment_step_add(
    *, deployment: Deployment, name: str, status: StepStatus, message: str = ""
) -> DeploymentStep:
    """Append a step to the deployment's log; call inside a transaction holding its lock
    when several writers may log at once."""
    last = deployment.steps.aggregate(last=Max("seq"))["last"]
    return DeploymentStep.objects.create(
        deployment=deployment,
        seq=(last or 0) + 1,
        name=name,
        status=status,
        message=message,
    )
