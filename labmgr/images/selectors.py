"""Reads on hosts' images: each image a host's store holds, with the deployments that run
it named only to those who may see them (the labs' own visibility rules; admins see all);
the others are only counted."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from django.contrib.auth.models import User

from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_list_visible
from labmgr.hosts.models import Host


class DeploymentUse(TypedDict):
    id: int
    lab: int
    lab_name: str
    status: str


class HostImage(TypedDict):
    digest: str
    refs: list[str]
    size: int
    last_used: float  # epoch seconds
    deployments: list[DeploymentUse]  # those the user may see
    other_deployments: int  # running it too, but not the user's to see


class HostImages(TypedDict):
    host: int
    slug: str
    name: str
    status: str
    images: list[HostImage]
    last_action: str  # "" before any
    last_action_ok: bool | None  # None while one is under way (or before any)
    last_action_at: datetime | None


def host_images(*, host: Host, user: User) -> HostImages:
    """The images host `host` last said its store holds, for `user` to read."""
    images: list[dict[str, Any]] = [i for i in host.images or [] if isinstance(i, dict)]
    tokens = sorted({t for image in images for t in image.get("tokens") or []})
    visible = {
        d.token: d
        for d in deployment_list_visible(user=user)
        .filter(token__in=tokens)
        .select_related("lab")
        .prefetch_related(None)
    }
    known = set(Deployment.objects.filter(token__in=tokens).values_list("token", flat=True))
    rows: list[HostImage] = []
    for image in images:
        used = sorted(set(image.get("tokens") or []))
        mine = sorted((visible[t] for t in used if t in visible), key=lambda d: d.pk)
        rows.append(
            {
                "digest": str(image.get("digest", "")),
                "refs": [str(r) for r in image.get("refs") or []],
                "size": int(image.get("size") or 0),
                "last_used": float(image.get("last_used") or 0),
                "deployments": [
                    {"id": d.pk, "lab": d.lab_id, "lab_name": d.lab.name, "status": d.status}
                    for d in mine
                ],
                "other_deployments": sum(1 for t in used if t not in visible and t in known),
            }
        )
    return {
        "host": host.pk,
        "slug": host.slug,
        "name": host.name,
        "status": host.status,
        "images": rows,
        "last_action": host.images_status,
        "last_action_ok": host.images_ok,
        "last_action_at": host.images_changed,
    }
