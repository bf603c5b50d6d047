"""What users do to deployments: deploy, destroy, redeploy, cancel, check, exec.

Each action checks who asks, moves the status machine through `deployment_transition`,
and sends the agent its job after the transaction commits (through `dispatch`, the one
seam to hosts). A job that cannot be sent fails the deployment with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from labmgr.accounts import selectors as accounts
from labmgr.accounts.services import quota_check_deploy
from labmgr.deployments import dispatch
from labmgr.deployments.choices import KEPT_STATES, DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import (
    deployment_advance,
    deployment_compile,
    deployment_create,
    deployment_job_sent,
    deployment_transition,
)
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.hosts.choices import HostStatus
from labmgr.hosts.models import Host
from labmgr.labs import selectors as lab_selectors
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labmgr.reservations.services import Budget, reservation_budget, reservation_check_deploy
from labplan import codec, features
from labplan.model import Labfile

log = logging.getLogger(__name__)
S = DeploymentStatus


def deployment_deploy(*, lab: Lab, actor: Any) -> Deployment:
    """Deploy the lab's current definition on its host; refused while the lab has an
    active deployment, when the host is offline or lacks a feature the plan needs, outside
    the actor's reservation of the host or past their quota."""
    _require_change(actor, lab)
    labfile = spec.lab_to_labfile(lab)
    host = _choose_host(labfile)
    budget = _require_budget(actor, host, lab, labfile)
    try:
        with transaction.atomic():
            Lab.objects.select_for_update().get(pk=lab.pk)  # two clicks queue up here
            if active := lab.deployments.exclude(status__in=_not_active()).first():
                raise _already_active(lab, active)
            deployment = deployment_create(lab=lab, owner=actor, host=host, labfile=labfile)
            _check_features(host, deployment)
            _send_apply(deployment, previous=None, budget=budget)
    except IntegrityError as exc:
        # Another request deployed the lab between the check and the insert.
        active = lab.deployments.exclude(status__in=_not_active()).first()
        if active is None:
            raise
        raise _already_active(lab, active) from exc
    return deployment


def deployment_destroy_lab(*, lab: Lab, actor: Any) -> Deployment:
    """Destroy every deployment of the lab that may own kernel objects; the latest one is
    returned. Destroying what is already being destroyed changes nothing."""
    _require_change(actor, lab)
    with transaction.atomic():
        Lab.objects.select_for_update().get(pk=lab.pk)
        kept = list(
            lab.deployments.filter(status__in=sorted(KEPT_STATES)).order_by("-created", "-id")
        )
        if not kept:
            raise Conflict(f"Lab {lab.name!r} has no deployment to destroy.")
        for deployment in kept:
            _destroy(deployment, reason=f"destroy requested by {actor}")
    return kept[0]


def deployment_redeploy(*, deployment: Deployment, actor: Any) -> Deployment:
    """Apply the lab's current definition to the running deployment: the agent receives
    the new plan with the previous one and changes only the difference."""
    _require_change(actor, deployment.lab)
    labfile = spec.lab_to_labfile(deployment.lab)
    with transaction.atomic():
        locked = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related("host", "lab")
            .get(pk=deployment.pk)
        )
        if locked.status != S.RUNNING:
            raise Conflict.for_field(
                "status",
                f"Only a running deployment can be redeployed; this one is {locked.status}.",
            )
        host = _choose_host(labfile)
        if host != locked.host:
            raise Conflict.for_field(
                "host", f"The lab now runs on {host}, not {locked.host}: destroy and deploy it."
            )
        budget = _require_budget(actor, host, locked.lab, labfile)
        previous = locked.plan
        deployment_compile(deployment=locked, labfile=labfile)
        _check_features(host, locked)
        locked.save(update_fields=["labfile", "plan", "indexes", "updated"])
        deployment_transition(deployment=locked, to=S.DEPLOYING, reason=f"redeploy by {actor}")
        _send_apply(locked, previous=previous, budget=budget)
    return locked


def deployment_cancel(*, deployment: Deployment, actor: Any) -> Deployment:
    """Stop a deployment that is not running yet; whatever its agent built is destroyed."""
    _require_change(actor, deployment.lab)
    with transaction.atomic():
        locked = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related("host")
            .get(pk=deployment.pk)
        )
        if locked.status not in (S.PENDING, S.DEPLOYING):
            raise Conflict.for_field(
                "status",
                "Only a pending or deploying deployment can be cancelled; "
                f"this one is {locked.status}.",
            )
        _destroy(locked, reason=f"cancelled by {actor}")
    return locked


def deployment_check(*, deployment: Deployment, actor: Any) -> Deployment:
    """Ask the agent to compare the kernel with the plan; it reports drift later."""
    _require_change(actor, deployment.lab)
    if deployment.status not in (S.RUNNING, S.FAILED):
        raise Conflict.for_field(
            "status",
            f"Only a running or failed deployment can be checked; this one is {deployment.status}.",
        )
    host = _require_online(deployment.host)
    plan, pk = deployment.plan, deployment.pk
    _on_commit(pk, lambda: dispatch.check(host=host.slug, deployment=pk, plan=plan), fail=False)
    return deployment


def deployment_exec(
    *, deployment: Deployment, actor: Any, node: str, argv: list[str], timeout: float
) -> dispatch.ExecResult:
    """Run a command in a node of the running deployment and return its outcome."""
    _require_change(actor, deployment.lab)
    if deployment.status != S.RUNNING:
        raise Conflict.for_field(
            "status", f"Commands run only in a running deployment; this one is {deployment.status}."
        )
    if node not in (deployment.labfile.get("nodes") or {}):
        raise ApplicationError.for_field("node", f"The deployment has no node {node!r}.")
    host = _require_online(deployment.host)
    return dispatch.exec_(
        host=host.slug,
        deployment=deployment.pk,
        token=deployment.token,
        node=node,
        argv=argv,
        timeout=min(timeout, settings.LABMGR_EXEC_TIMEOUT),
    )


def deployment_for_terminal(*, lab: Lab, actor: Any, node: str) -> Deployment:
    """The running deployment of the lab whose node `node` the actor may open a terminal
    in: only the lab's owner or an admin."""
    _require_change(actor, lab)
    deployment = lab.deployments.filter(status=S.RUNNING).select_related("host").first()
    if deployment is None:
        raise Conflict(f"Lab {lab.name!r} is not running.")
    if node not in (deployment.labfile.get("nodes") or {}):
        raise ApplicationError.for_field("node", f"The lab has no node {node!r}.")
    _require_online(deployment.host)
    return deployment


# --- helpers ---------------------------------------------------------------------------


def _not_active() -> list[str]:
    return [S.DESTROYED, S.CANCELLED, S.FAILED]


def _already_active(lab: Lab, active: Deployment) -> Conflict:
    return Conflict(
        f"Lab {lab.name!r} already has deployment #{active.pk} ({active.status}); "
        "redeploy or destroy it first."
    )


def _require_change(actor: Any, lab: Lab) -> None:
    if not lab_selectors.lab_can_change(user=actor, lab=lab):
        raise NotAllowed("This lab is shared with you to read; only its owner may run it.")


def _require_budget(actor: Any, host: Host, lab: Lab, labfile: Labfile) -> Budget | None:
    """Inside an active reservation of the host whose share the lab fits, and within the
    actor's quotas (admins are exempt from both). Returns the budget the agent puts the
    deployment's cgroups in: the share of the reservation it was accepted under; None
    outside reservations, for a whole-host booking, and for admins, whom no booking
    binds (the kernel would hold them to a share they were allowed to exceed)."""
    reservation = reservation_check_deploy(user=actor, host=host, lab=lab)
    quota_check_deploy(user=actor, lab=labfile)
    if accounts.user_is_admin(user=actor):
        return None
    return reservation_budget(reservation)


def _require_online(host: Host | None) -> Host:
    if host is None or host.status != HostStatus.ONLINE:
        raise Conflict.for_field("host", f"Host {host or '(none)'} is offline.")
    return host


def _choose_host(labfile: Labfile) -> Host:
    """The host the nodes name, else the only or first online host."""
    named = sorted({node.host for node in labfile.nodes if node.host})
    if len(named) > 1:
        raise ApplicationError.for_field(
            "nodes", f"The lab places nodes on {', '.join(named)}; it must run on one host."
        )
    if named:
        host = Host.objects.filter(slug=named[0]).first()
        if host is None:
            node = next(n.name for n in labfile.nodes if n.host)
            raise ApplicationError.for_field(
                f"nodes.{node}.host", f"There is no host {named[0]!r}."
            )
        return _require_online(host)
    host = Host.objects.filter(status=HostStatus.ONLINE).order_by("name", "id").first()
    if host is None:
        raise Conflict.for_field("host", "No host is online to deploy on.")
    return host


def _check_features(host: Host, deployment: Deployment) -> None:
    plan = deployment.compiled or codec.plan_from_dict(deployment.plan)
    for host_plan in plan.hosts:
        if missing := features.missing(host.facts or {}, host_plan):
            message = f"Host {host} lacks {', '.join(missing)}, which this lab needs."
            raise ApplicationError.for_field("host", message)


def _send_apply(
    deployment: Deployment, *, previous: dict[str, Any] | None, budget: Budget | None
) -> None:
    deployment_job_sent(deployment=deployment)
    host, pk, plan = deployment.host, deployment.pk, deployment.plan
    assert host is not None
    _on_commit(
        pk,
        lambda: dispatch.apply(
            host=host.slug, deployment=pk, plan=plan, previous=previous, budget=budget
        ),
    )


def _destroy(deployment: Deployment, *, reason: str) -> None:
    """Cancel (pending) or destroy the deployment, and send its host the teardown."""
    if deployment.status == S.DESTROYING:
        return
    target = S.CANCELLED if deployment.status == S.PENDING else S.DESTROYING
    deployment_transition(deployment=deployment, to=target, reason=reason)
    if deployment.host is None:
        return
    deployment_job_sent(deployment=deployment)
    slug, pk, token = deployment.host.slug, deployment.pk, deployment.token
    _on_commit(pk, lambda: dispatch.destroy(host=slug, deployment=pk, token=token))


def _on_commit(deployment_id: int, send: Callable[[], None], *, fail: bool = True) -> None:
    """Send after commit; if the broker cannot take the job, the deployment fails with
    the reason instead of waiting for an agent that will never hear of it."""

    def run() -> None:
        try:
            send()
        except Exception as exc:
            log.exception("could not send a job for deployment %s", deployment_id)
            if fail:
                deployment_advance(
                    deployment_id=deployment_id,
                    to=S.FAILED,
                    reason=f"the job could not be sent to the host: {exc}",
                    only_from=frozenset({S.PENDING, S.DEPLOYING, S.DESTROYING}),
                )

    transaction.on_commit(run)
