"""What the control plane notes when it sends a deployment's hosts a job: the job number
its steps carry, the stuck-deployment clock, and which hosts' results are awaited.
Sending itself goes through `dispatch`, after commit."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from labmgr.deployments import dispatch
from labmgr.deployments.models import Deployment, DeploymentHost

log = logging.getLogger(__name__)


def deployment_job_sent(*, deployment: Deployment) -> None:
    """Note that a job (apply, destroy) is on its way to the agent: its steps get a new
    job number and the stuck-deployment clock restarts."""
    deployment.job += 1
    deployment.dispatched = timezone.now()
    deployment.save(update_fields=["job", "dispatched", "updated"])


def deployment_hosts_await(
    *, deployment: Deployment, action: str, placements: Sequence[DeploymentHost] = ()
) -> None:
    """Note that each host of a deployment placed on several (or those of `placements`)
    was sent `action`: its result is awaited."""
    query = DeploymentHost.objects.filter(deployment=deployment)
    if placements:
        query = query.filter(pk__in=[p.pk for p in placements])
    query.update(action=action, ok=None, error="")


def deployment_hosts_destroy(
    *, deployment: Deployment, placements: Sequence[DeploymentHost]
) -> None:
    """Send each host a destroy of its part (after commit); call holding the row's lock."""
    deployment_job_sent(deployment=deployment)
    deployment_hosts_await(deployment=deployment, action="destroy", placements=placements)
    slugs, pk, token = [p.host.slug for p in placements], deployment.pk, deployment.token

    def send() -> None:
        for slug in slugs:
            try:
                dispatch.destroy(host=slug, deployment=pk, token=token)
            except Exception:  # the heartbeat's sweep removes it once the host is back
                log.exception("could not send host %s the destroy of deployment %s", slug, pk)

    transaction.on_commit(send)
