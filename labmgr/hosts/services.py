"""Writes on hosts: what a heartbeat tells (online, facts, capacity) and going offline.

Admins register hosts (labmgr.hosts.trust); a registered host's agent marks it online with
its signed heartbeats; an admin may rename it later.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import validate_slug
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labmgr import events
from labmgr.deployments.choices import KEPT_STATES
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError
from labmgr.hosts.choices import HostStatus
from labmgr.hosts.models import Host
from labmgr.images.services import host_images_store

log = logging.getLogger(__name__)

# Capacity the agent reports in its facts (`facts["capacity"]`), used while the admin has
# not set the host's own.
CAPACITY_FACTS = ("cpus", "memory", "pids")
IMAGES_FACT = "images"  # labplan.messages.ImageFact each


def host_heartbeat(*, slug: str, facts: dict[str, Any], sent: float) -> Host | None:
    """Mark the host online with the facts it sent (its image store's list, `images`, goes
    to `Host.images`); None when the heartbeat is too old to say anything about now (it
    waited in the queue longer than a host may stay silent)."""
    if time.time() - sent > settings.LABMGR_HOST_OFFLINE_AFTER:
        log.info("ignoring a heartbeat of %s sent %.0f s ago", slug, time.time() - sent)
        return None
    try:
        validate_slug(slug)
    except Exception as exc:
        raise ApplicationError.for_field("host", f"{slug!r} is not a host slug.") from exc
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(slug=slug).first()
        if host is None:
            raise ApplicationError.for_field("host", f"Host {slug!r} is not registered.")
        was = host.status
        host.status = HostStatus.ONLINE
        # The store's images are kept apart from the kernel's facts (the Images page's
        # list); an agent that sends none (one without a store) leaves the list as it was.
        host.facts = {key: value for key, value in facts.items() if key != IMAGES_FACT}
        host.last_seen = timezone.now()
        fields = ["status", "facts", "last_seen", "updated"]
        if IMAGES_FACT in facts and host_images_store(host=host, images=facts[IMAGES_FACT]):
            fields.append("images")
        capacity = facts.get("capacity")
        capacity = capacity if isinstance(capacity, dict) else facts
        for key in CAPACITY_FACTS:
            value = capacity.get(key)
            if isinstance(value, int) and value >= 0 and getattr(host, key) == 0:
                setattr(host, key, value)
                fields.append(key)
        host.save(update_fields=fields)
        if was != HostStatus.ONLINE:
            _publish_status(host)
    return host


def hosts_mark_silent_offline() -> list[Host]:
    """Every online host silent for longer than LABMGR_HOST_OFFLINE_AFTER, now offline."""
    limit = timezone.now() - timedelta(seconds=settings.LABMGR_HOST_OFFLINE_AFTER)
    gone = []
    with transaction.atomic():
        silent = Host.objects.select_for_update().filter(
            Q(last_seen__lt=limit) | Q(last_seen__isnull=True), status=HostStatus.ONLINE
        )
        for host in silent:
            host.status = HostStatus.OFFLINE
            host.save(update_fields=["status", "updated"])
            _publish_status(host)
            gone.append(host)
    return gone


def _publish_status(host: Host) -> None:
    # Labs with a deployment on the host hear it on their own group (the browser only
    # subscribes to its lab); admin pages may follow the host's group.
    placed = Q(host=host) | Q(placements__host=host)
    kept = Deployment.objects.filter(placed, status__in=sorted(KEPT_STATES))
    lab_ids = kept.values_list("lab_id", flat=True).distinct()
    groups = [events.host_group(host.slug), *(events.lab_group(i) for i in lab_ids)]
    events.publish(groups, {"type": "host.status", "host": host.slug, "status": host.status})
