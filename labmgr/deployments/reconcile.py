"""Keeping deployments true to their hosts: heartbeats, silent hosts, stuck jobs, drift.

Called by the control tasks (heartbeat and beat). A heartbeat lists the deployment tokens
the host's kernel holds; the database follows what it shows.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from labmgr.deployments import dispatch
from labmgr.deployments.choices import KEPT_STATES, DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_hosts
from labmgr.deployments.services import deployment_advance, deployment_job_sent
from labmgr.hosts.choices import HostStatus
from labmgr.hosts.models import Host

log = logging.getLogger(__name__)
S = DeploymentStatus
# Where an unknown deployment goes when its host reports again: (token present, absent).
RETURN_FROM_UNKNOWN = {
    S.DEPLOYING: (S.DEPLOYING, S.DEPLOYING),  # its result (or the stuck check) decides
    S.RUNNING: (S.RUNNING, S.FAILED),
    S.DESTROYING: (S.DESTROYING, S.DESTROYED),
}


def deployments_reconcile_host(*, host: Host, tokens: list[str], sent: float) -> list[str]:
    """Follow what the host's kernel holds; returns the tokens it was asked to sweep."""
    present = set(tokens)
    taken = datetime.fromtimestamp(sent, tz=UTC)
    kept = list(on_host(host).filter(status__in=sorted(KEPT_STATES)))
    for deployment in kept:
        # A status set after the heartbeat was taken is newer than what it shows.
        if deployment.updated >= taken:
            continue
        has = deployment.token in present
        if deployment.status == S.UNKNOWN:
            if _other_host_silent(deployment, host):
                continue  # it stays unknown until every host of it reports
            back = RETURN_FROM_UNKNOWN.get(DeploymentStatus(deployment.unknown_from or S.RUNNING))
            target = (back or (S.RUNNING, S.FAILED))[0 if has else 1]
            deployment_advance(
                deployment_id=deployment.pk,
                to=target,
                reason=f"host {host.slug} reports again",
                only_from=frozenset({S.UNKNOWN}),
            )
        elif deployment.status == S.RUNNING and not has:
            deployment_advance(
                deployment_id=deployment.pk,
                to=S.FAILED,
                reason=f"host {host.slug} no longer has it",
                only_from=frozenset({S.RUNNING}),
            )
    owned = {d.token for d in kept}
    # Objects of a deployment that is over or unknown to the database: the agent removes them.
    if present - owned:
        live = sorted(owned)
        transaction.on_commit(lambda: dispatch.sweep(host=host.slug, live=live))
    return sorted(present - owned)


def on_host(host: Host) -> QuerySet[Deployment]:
    """The deployments with a part on the host (their first host or another)."""
    return Deployment.objects.filter(Q(host=host) | Q(placements__host=host)).distinct()


def _other_host_silent(deployment: Deployment, host: Host) -> bool:
    others = Host.objects.filter(placements__deployment=deployment).exclude(pk=host.pk)
    return others.exclude(status=HostStatus.ONLINE).exists()


def deployments_mark_unknown(*, host: Host) -> int:
    """The host went silent: whatever it was doing is unknown until it reports again."""
    count = 0
    busy = on_host(host).filter(status__in=[S.DEPLOYING, S.RUNNING, S.DESTROYING])
    for pk in busy.values_list("pk", flat=True):
        count += deployment_advance(
            deployment_id=pk,
            to=S.UNKNOWN,
            reason=f"host {host.slug} stopped answering",
            only_from=frozenset({S.DEPLOYING, S.RUNNING, S.DESTROYING}),
        )
    return count


def deployments_fail_stuck() -> int:
    """Deployments whose agent has said nothing for LABMGR_DEPLOY_TIMEOUT since their job
    was sent fail, and their host is asked to remove whatever part of them exists."""
    limit = timezone.now() - timedelta(seconds=settings.LABMGR_DEPLOY_TIMEOUT)
    quiet = Q(heard__lt=limit) | Q(heard__isnull=True)
    stuck = Deployment.objects.filter(
        quiet, dispatched__lt=limit, status__in=[S.PENDING, S.DEPLOYING]
    ).select_related("host")
    count = 0
    for deployment in stuck:
        reason = f"no news from host {deployment.host} for {settings.LABMGR_DEPLOY_TIMEOUT:.0f} s"
        with transaction.atomic():
            failed = deployment_advance(
                deployment_id=deployment.pk,
                to=S.FAILED,
                reason=reason,
                only_from=frozenset({S.PENDING, S.DEPLOYING}),
            )
            if failed and deployment.host is not None:
                deployment_job_sent(deployment=deployment)
                _destroy_after_commit(deployment)
        count += failed
    return count


def _destroy_after_commit(deployment: Deployment) -> None:
    """Send every host of the deployment its destroy once the transaction commits."""
    slugs, pk, token = (
        [h.slug for h in deployment_hosts(deployment)],
        deployment.pk,
        deployment.token,
    )

    def send() -> None:
        for slug in slugs:
            dispatch.destroy(host=slug, deployment=pk, token=token)

    transaction.on_commit(send)


def deployments_check_drift() -> int:
    """Ask every online host to compare its running deployments with their plans."""
    running = Deployment.objects.filter(
        status=S.RUNNING, host__status=HostStatus.ONLINE
    ).select_related("host")
    count = 0
    for deployment in running:
        for host in deployment_hosts(deployment):
            if host.status == HostStatus.ONLINE:
                dispatch.check(host=host.slug, deployment=deployment.pk, plan=deployment.plan)
        count += 1
    return count
