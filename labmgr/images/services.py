"""Writes on hosts' images: what agents report of their stores (a heartbeat's list, the
report after an image action), which the Images page shows and hears of, and what admins
ask of a store (pull, remove, prune; uploads are labmgr.images.uploads).

An admin's action is checked here (who, what, which host), noted on the host as under way
and sent to its agent once committed; the agent answers with an images report
(`host_images_report_record`), never with a Celery result anyone waits for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypedDict

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from labmgr import events
from labmgr.accounts.selectors import user_is_admin
from labmgr.deployments.placement import host_require_online
from labmgr.errors import ApplicationError, NotAllowed
from labmgr.hosts.models import Host
from labmgr.images import dispatch
from labmgr.images.facts import DIGEST_RE, image_facts
from labmgr.images.logins import logins_sealed
from labplan import imageref

log = logging.getLogger(__name__)

ACTIONS = ("pull", "remove", "prune", "load")
STATUS_LENGTH = 2000  # characters of an agent's outcome kept
REFS_MAX = 100  # images one removal may name


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


# --- what admins ask of a host's store -------------------------------------------------


class Dispatched(TypedDict):
    """What an admin's image action sent to the host (the API's 202 body)."""

    host: str
    action: str
    refs: list[str]
    all: bool | None
    status: str  # what the Images page shows until the agent answers


def image_admin_check(*, actor: User, doing: str) -> None:
    """Refuse anyone but an admin, in words that say who may."""
    if not user_is_admin(user=actor):
        raise NotAllowed(f"Only an admin may {doing} on a host; ask one to do it for you.")


def image_reference(field: str, value: object) -> str:
    """`value` as the one canonical text of the image reference it spells (Docker's
    grammar: `alpine`, `docker.io/frrouting/frr:v8.4.1`), or a 400 naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise ApplicationError.for_field(field, "An image reference is needed, like alpine:3.20.")
    try:
        return imageref.canonical(value.strip())
    except ValueError as exc:
        raise ApplicationError.for_field(field, f"{exc}.") from None


def image_action_sent(*, host: Host, sentence: str, send: Callable[[], None]) -> Dispatched:
    """Note on the host that an action is under way (the page shows `sentence` until the
    agent's report) and send it once committed; 409 when the host is offline."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        host_require_online(locked)
        locked.images_ok = None
        locked.images_status = sentence[:STATUS_LENGTH]
        locked.images_changed = timezone.now()
        locked.save(update_fields=["images_ok", "images_status", "images_changed"])
        host_images_publish(locked)
        transaction.on_commit(lambda: _send_or_say(locked.pk, sentence, send))
    action = sentence.partition(":")[0]
    return {"host": locked.slug, "action": action, "refs": [], "all": None, "status": sentence}


def _send_or_say(host_id: int, sentence: str, send: Callable[[], None]) -> None:
    """Send the action; if the broker cannot take it, the host's last action says so
    instead of waiting for an answer that will never come."""
    try:
        send()
    except Exception as exc:
        log.exception("could not send an image action to host %s", host_id)
        action = sentence.partition(":")[0]
        with transaction.atomic():
            host = Host.objects.select_for_update().get(pk=host_id)
            host.images_ok = False
            host.images_status = f"{action}: could not be sent to the host: {exc}"[:STATUS_LENGTH]
            host.images_changed = timezone.now()
            host.save(update_fields=["images_ok", "images_status", "images_changed"])
            host_images_publish(host)


def image_pull(*, host: Host, actor: User, ref: object) -> Dispatched:
    """Ask the host to pull `ref` (with its registry's login, sealed under its key)."""
    image_admin_check(actor=actor, doing="pull images")
    canonical = image_reference("ref", ref)
    sealed = logins_sealed(host=host, refs=[canonical])
    slug = host.slug
    sent = image_action_sent(
        host=host,
        sentence=f"pull: {canonical} asked for",
        send=lambda: dispatch.image_pull(host=slug, ref=canonical, registries=sealed),
    )
    return {**sent, "refs": [canonical]}


def image_remove(*, host: Host, actor: User, refs: object) -> Dispatched:
    """Ask the host to remove these images (references or digests); the agent keeps
    those a deployment on it runs and says so."""
    image_admin_check(actor=actor, doing="remove images")
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not refs:
        raise ApplicationError.for_field("refs", "Name at least one image reference or digest.")
    if len(refs) > REFS_MAX:
        raise ApplicationError.for_field("refs", f"Name at most {REFS_MAX} images at once.")
    named = sorted(
        {
            ref
            if isinstance(ref, str) and DIGEST_RE.fullmatch(ref)
            else image_reference(f"refs.{i}", ref)
            for i, ref in enumerate(refs)
        }
    )
    slug = host.slug
    sent = image_action_sent(
        host=host,
        sentence=f"remove: {', '.join(named)} asked for",
        send=lambda: dispatch.image_remove(host=slug, refs=named),
    )
    return {**sent, "refs": named}


def image_prune(*, host: Host, actor: User, all: object = True) -> Dispatched:
    """Ask the host to remove every image no deployment runs (`all`), or only the least
    recently used unused ones until its store is within LABMGR_IMAGE_CACHE_MAX."""
    image_admin_check(actor=actor, doing="prune images")
    if not isinstance(all, bool):
        raise ApplicationError.for_field("all", "all is true (every unused image) or false.")
    slug, every = host.slug, all
    what = "every unused image" if every else "unused images past the cache's bound"
    sent = image_action_sent(
        host=host,
        sentence=f"prune: {what} asked for",
        send=lambda: dispatch.image_prune(host=slug, all=every),
    )
    return {**sent, "all": every}
