"""Reads on deployments: a deployment is visible to whoever may see its lab."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from labmgr.deployments.models import Deployment
from labmgr.labs.selectors import lab_list_visible


def deployment_list_visible(*, user: Any) -> QuerySet[Deployment]:
    visible_labs = lab_list_visible(user=user).values("pk")
    return (
        Deployment.objects.filter(lab__in=visible_labs)
        .select_related("lab", "host", "owner")
        .prefetch_related("steps", "nodes")
        .order_by("-created", "-id")
    )


def deployment_get_visible(*, user: Any, pk: int) -> Deployment:
    """Raises Deployment.DoesNotExist when absent or not visible to the user."""
    return deployment_list_visible(user=user).get(pk=pk)
