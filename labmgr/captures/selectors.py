"""Reads on captures: a capture is visible to whoever may see its deployment's lab."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from labmgr.captures.models import Capture
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_list_visible


def deployment_for_captures(*, user: User, pk: int) -> Deployment:
    """The deployment if the user may see it; raises Deployment.DoesNotExist otherwise."""
    return deployment_list_visible(user=user).get(pk=pk)


def capture_list(*, deployment: Deployment) -> QuerySet[Capture]:
    """The deployment's captures, newest first, without their files."""
    return (
        Capture.objects.filter(deployment=deployment)
        .defer("pcap")
        .select_related("deployment__lab", "deployment__host")
    )


def capture_get(*, deployment: Deployment, pk: int) -> Capture:
    """Raises Capture.DoesNotExist when the deployment has no such capture."""
    return capture_list(deployment=deployment).get(pk=pk)


def capture_pcap(*, capture: Capture) -> bytes | None:
    data = Capture.objects.filter(pk=capture.pk).values_list("pcap", flat=True).first()
    return bytes(data) if data is not None else None
