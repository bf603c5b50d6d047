"""Writes on hosts' images: what agents report of their stores (a heartbeat's list, the
report after an image action), which the Images page shows and hears of."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from labmgr import events
from labmgr.hosts.models import Host
from labmgr.images.facts import image_facts

log = logging.getLogger(__name__)

ACTIONS = ("pull", "remove", "prune", "load")
STATUS_LENGTH = 2000  # characters of an agent's outcome kept


def host_images_store(*, host: Host, images: object) -> bool:
    """Set the host's image list (not saved: the caller saves `images`) to the well-formed
    entries of `images`; True, and the Images page told once committed, when it changed.
    Entries are compared as the agent listed them, `last_used` included."""
    facts = image_facts(images)
    if facts == host.images:
        return False
    host.images = facts
    host_images_publish(host)
    return True


def host_images_report_record(
    *, slug: str, action: str, ok: bool, error: str, message: str, images: object
) -> Host | None:
    """Store what the agent of `slug` said after an image action: its store's images and
    the outcome (`images_status`, "pull: pulled docker.io/library/alpine:3.20 (sha256:...)"
    or the agent's error), which the Images page shows as the host's last action."""
    if action not in ACTIONS:
        log.warning("an images report of %s names the action %r", slug, action)
        action = "images"
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(slug=slug).first()
        if host is None:
            return None
        words = (message if ok else error or message) or ("done" if ok else "failed")
        if isinstance(images, list):
            host.images = image_facts(images)
        host.images_ok = ok
        host.images_status = f"{action}: {words}"[:STATUS_LENGTH]
        host.images_changed = timezone.now()
        host.save(update_fields=["images", "images_ok", "images_status", "images_changed"])
        host_images_publish(host)
    return host


def host_images_publish(host: Host) -> None:
    """Tell the pages following the host (its group) that its images or their last
    action changed; they read the list again, as the user may see it."""
    events.publish(
        [events.host_group(host.slug)],
        {
            "type": "host.images",
            "host": host.slug,
            "ok": host.images_ok,
            "status": host.images_status,
            "count": len(host.images),
        },
    )
