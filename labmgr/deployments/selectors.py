"""Reads on deployments: a deployment is visible to whoever may see its lab; the hosts a
deployment is placed on, and the host each of its nodes runs on."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from labmgr.deployments.models import Deployment
from labmgr.hosts.models import Host
from labmgr.labs.selectors import lab_list_visible


def deployment_list_visible(*, user: User) -> QuerySet[Deployment]:
    visible_labs = lab_list_visible(user=user).values("pk")
    return (
        Deployment.objects.filter(lab__in=visible_labs)
        .select_related("lab", "host", "owner")
        .prefetch_related("steps", "nodes", "hosts")
        .order_by("-created", "-id")
    )


def deployment_get_visible(*, user: User, pk: int) -> Deployment:
    """Raises Deployment.DoesNotExist when absent or not visible to the user."""
    return deployment_list_visible(user=user).get(pk=pk)


def deployment_hosts(deployment: Deployment) -> list[Host]:
    """The hosts the deployment is placed on, its first host first."""
    hosts = sorted(
        Host.objects.filter(placements__deployment=deployment),
        key=lambda h: (h.pk != deployment.host_id, h.slug),
    )
    if not hosts and deployment.host is not None:
        return [deployment.host]  # placed before deployments knew their hosts
    return hosts


def deployment_placed_on(*, deployment_id: int, slug: str) -> bool:
    """Whether host `slug` holds a part of the deployment: whose reports count for it."""
    placed = Q(host__slug=slug) | Q(placements__host__slug=slug)
    return Deployment.objects.filter(placed, pk=deployment_id).exists()


def deployment_node_host(deployment: Deployment, node: str) -> Host | None:
    """The host the node runs on: the one its labfile names, else the first host."""
    named = ((deployment.labfile.get("nodes") or {}).get(node) or {}).get("host")
    if not named or deployment.host is None or named == deployment.host.slug:
        return deployment.host
    return Host.objects.filter(slug=named).first()


def deployment_node_hosts(deployment: Deployment) -> dict[str, str]:
    """Each node's host slug, by node name."""
    first = deployment.host.slug if deployment.host else ""
    nodes = deployment.labfile.get("nodes") or {}
    return {name: (spec or {}).get("host") or first for name, spec in nodes.items()}
