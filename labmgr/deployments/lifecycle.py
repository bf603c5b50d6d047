"""What users do to deployments: deploy, destroy, redeploy, cancel, check, exec.

Each action checks who asks and where the lab goes (`placement`), moves the status
machine through `deployment_transition`, and sends the agent its job after the
transaction commits (through `dispatch`, the one seam to hosts). A job that cannot be
sent fails the deployment with the reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from labmgr.accounts import selectors as accounts
from labmgr.deployments import dispatch, placement
from labmgr.deployments.choices import KEPT_STATES, DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_hosts, deployment_node_host
from labmgr.deployments.services import (
    deployment_advance,
    deployment_compile,
    deployment_create,
    deployment_hosts_await,
    deployment_job_sent,
    deployment_transition,
)
from labmgr.deployments.subnets import deployment_check_subnets
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.hosts.models import Host
from labmgr.images.logins import apply_logins
from labmgr.labs import selectors as lab_selectors
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labplan import labfile as labfile_module
from labplan import live
from labplan.messages import Budget, ExecAnswer
from labplan.model import Labfile

log = logging.getLogger(__name__)
S = DeploymentStatus


def deployment_deploy(*, lab: Lab, actor: User) -> Deployment:
    """Deploy the lab's current definition on its hosts; refused while the lab has an
    active deployment, when a host is offline or lacks a feature the plan needs (or an
    underlay address its overlay networks need), outside the actor's reservation of each
    host or past their quota."""
    _require_change(actor, lab)
    labfile = spec.lab_to_labfile(lab)
    _require_admin_powers(actor, labfile)
    hosts = placement.hosts_choose(labfile, actor=actor)
    placement.hosts_require_underlay(labfile, hosts)
    budgets = placement.hosts_require_budgets(actor, hosts, lab, labfile)
    try:
        with transaction.atomic():
            Lab.objects.select_for_update().get(pk=lab.pk)  # two clicks queue up here
            if active := lab.deployments.exclude(status__in=_not_active()).first():
                raise _already_active(lab, active)
            deployment = deployment_create(
                lab=lab, owner=actor, host=hosts[0], labfile=labfile, hosts=hosts
            )
            placement.hosts_require_features(hosts, deployment)
            deployment_check_subnets(
                deployment=deployment, labfile=labfile, hosts=hosts, actor=actor
            )
            _send_apply(deployment, hosts, previous=None, budgets=budgets)
    except IntegrityError as exc:
        # Another request deployed the lab between the check and the insert.
        active = lab.deployments.exclude(status__in=_not_active()).first()
        if active is None:
            raise
        raise _already_active(lab, active) from exc
    return deployment


def deployment_destroy_lab(*, lab: Lab, actor: User) -> Deployment:
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


def deployment_redeploy(*, deployment: Deployment, actor: User) -> Deployment:
    """Apply the lab's current definition to the running deployment: the agent receives
    the new plan with the previous one and changes only the difference."""
    _require_change(actor, deployment.lab)
    labfile = spec.lab_to_labfile(deployment.lab)
    _require_admin_powers(actor, labfile)
    if deployment.live and deployment.status == S.RUNNING:
        # Live changes undone first: the redeploy starts from what the labfile said.
        from labmgr.deployments.live import deployment_live

        if not live.State.from_dict(deployment.live).empty:
            deployment_live(deployment=deployment, actor=actor, action={"restore": "all"})
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
        placed = deployment_hosts(locked)
        hosts = placement.hosts_choose(labfile, actor=actor, running_on=placed[0])
        if hosts[0] != placed[0] or {h.pk for h in hosts} != {h.pk for h in placed}:
            now, was = _names(hosts), _names(placed)
            raise Conflict.for_field(
                "host", f"The lab now runs on {now}, not {was}: destroy and deploy it."
            )
        placement.hosts_require_underlay(labfile, hosts)
        budgets = placement.hosts_require_budgets(actor, hosts, locked.lab, labfile)
        previous = locked.plan
        deployment_compile(deployment=locked, labfile=labfile, hosts=hosts)
        placement.hosts_require_features(hosts, locked)
        deployment_check_subnets(deployment=locked, labfile=labfile, hosts=hosts, actor=actor)
        locked.save(update_fields=["labfile", "plan", "indexes", "updated"])
        deployment_transition(deployment=locked, to=S.DEPLOYING, reason=f"redeploy by {actor}")
        _send_apply(locked, hosts, previous=previous, budgets=budgets)
    return locked


def deployment_cancel(*, deployment: Deployment, actor: User) -> Deployment:
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


def deployment_check(*, deployment: Deployment, actor: User) -> Deployment:
    """Ask the agent to compare the kernel with the plan; it reports drift later."""
    _require_change(actor, deployment.lab)
    if deployment.status not in (S.RUNNING, S.FAILED):
        raise Conflict.for_field(
            "status",
            f"Only a running or failed deployment can be checked; this one is {deployment.status}.",
        )
    slugs = [placement.host_require_online(host).slug for host in deployment_hosts(deployment)]
    plan, pk = deployment.plan, deployment.pk

    def send() -> None:
        for slug in slugs:
            dispatch.check(host=slug, deployment=pk, plan=plan)

    _on_commit(pk, send, fail=False)
    return deployment


def deployment_exec(
    *, deployment: Deployment, actor: User, node: str, argv: list[str], timeout: float
) -> ExecAnswer:
    """Run a command in a node of the running deployment and return its outcome."""
    _require_change(actor, deployment.lab)
    if deployment.status != S.RUNNING:
        raise Conflict.for_field(
            "status", f"Commands run only in a running deployment; this one is {deployment.status}."
        )
    if node not in (deployment.labfile.get("nodes") or {}):
        raise ApplicationError.for_field("node", f"The deployment has no node {node!r}.")
    host = placement.host_require_online(deployment_node_host(deployment, node))
    return dispatch.exec_(
        host=host.slug,
        deployment=deployment.pk,
        token=deployment.token,
        node=node,
        argv=argv,
        timeout=min(timeout, settings.LABMGR_EXEC_TIMEOUT),
    )


def deployment_for_terminal(*, lab: Lab, actor: User, node: str) -> Deployment:
    """The running deployment of the lab whose node `node` the actor may open a terminal
    in: only the lab's owner or an admin."""
    _require_change(actor, lab)
    deployment = lab.deployments.filter(status=S.RUNNING).select_related("host").first()
    if deployment is None:
        raise Conflict(f"Lab {lab.name!r} is not running.")
    if node not in (deployment.labfile.get("nodes") or {}):
        raise ApplicationError.for_field("node", f"The lab has no node {node!r}.")
    placement.host_require_online(deployment_node_host(deployment, node))
    return deployment


# --- helpers ---------------------------------------------------------------------------


def _not_active() -> list[str]:
    return [S.DESTROYED, S.CANCELLED, S.FAILED]


def _already_active(lab: Lab, active: Deployment) -> Conflict:
    return Conflict(
        f"Lab {lab.name!r} already has deployment #{active.pk} ({active.status}); "
        "redeploy or destroy it first."
    )


def _require_admin_powers(actor: User, labfile: Labfile) -> None:
    """Refuse a lab using a power that reaches the host unless the one deploying it is an
    admin: who saved or copied the lab (an admin may make one for a student) lends none."""
    if accounts.user_is_admin(user=actor):
        return
    if needs := labfile_module.admin_requirements(labfile):
        fields = ", ".join(need.path for need in needs)
        errors: dict[str, list[str]] = {}
        for need in needs:
            errors.setdefault(need.path, []).append(need.message)
        raise ApplicationError(f"Only an admin may deploy this lab: it uses {fields}.", errors)


def _require_change(actor: User, lab: Lab) -> None:
    if not lab_selectors.lab_can_change(user=actor, lab=lab):
        raise NotAllowed("This lab is shared with you to read; only its owner may run it.")


def _names(hosts: Sequence[Host]) -> str:
    return ", ".join(str(h) for h in hosts)


def _send_apply(
    deployment: Deployment,
    hosts: Sequence[Host],
    *,
    previous: dict[str, Any] | None,
    budgets: dict[str, Budget | None],
) -> None:
    """Send each host the plan (each applies its part) with its own budget and the
    registry logins its pulls need, sealed under its key."""
    deployment_job_sent(deployment=deployment)
    pk, plan, token = deployment.pk, deployment.plan, deployment.token
    logins = apply_logins(plan=plan, hosts=hosts)
    if len(hosts) == 1:
        slug, budget = hosts[0].slug, budgets[hosts[0].slug]
        _on_commit(
            pk,
            lambda: dispatch.apply(
                host=slug,
                deployment=pk,
                plan=plan,
                previous=previous,
                budget=budget,
                registries=logins[slug],
            ),
        )
        return
    deployment_hosts_await(deployment=deployment, action="apply")
    slugs = [h.slug for h in hosts]

    def send() -> None:
        sent: list[str] = []
        try:
            for slug in slugs:
                dispatch.apply(
                    host=slug,
                    deployment=pk,
                    plan=plan,
                    previous=previous,
                    budget=budgets[slug],
                    registries=logins[slug],
                )
                sent.append(slug)
        except Exception:
            # The deployment fails (below, in `_on_commit`): what was sent is undone.
            for slug in sent:
                with contextlib.suppress(Exception):
                    dispatch.destroy(host=slug, deployment=pk, token=token)
            raise

    _on_commit(pk, send)


def _destroy(deployment: Deployment, *, reason: str) -> None:
    """Cancel (pending) or destroy the deployment, and send each of its hosts the
    teardown."""
    if deployment.status == S.DESTROYING:
        return
    from labmgr.deployments.scenarios import scenarios_end

    scenarios_end(deployment=deployment, reason="the lab is being destroyed")
    target = S.CANCELLED if deployment.status == S.PENDING else S.DESTROYING
    deployment_transition(deployment=deployment, to=target, reason=reason)
    if deployment.host is None:
        return
    deployment_job_sent(deployment=deployment)
    slugs = [h.slug for h in deployment_hosts(deployment)]
    if len(slugs) > 1:
        deployment_hosts_await(deployment=deployment, action="destroy")
    pk, token = deployment.pk, deployment.token

    def send() -> None:
        for slug in slugs:
            dispatch.destroy(host=slug, deployment=pk, token=token)

    _on_commit(pk, send)


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
