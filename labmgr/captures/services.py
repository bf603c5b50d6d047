"""Starting, stopping and deleting captures, and recording what agents report of them.

Every check is made here, before the agent hears of a capture: who may capture (the
lab's owner or an admin), in which deployment (a running one), which node and interface
(one the lab gives the node), which filter (one line; tcpdump then compiles it on the
host) and which bounds (within LABMGR_CAPTURE_MAX_BYTES / _MAX_SECONDS). The agent checks
the same again, since it trusts nothing it is sent.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import cast

import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from labmgr.captures import conf, dispatch
from labmgr.captures.models import ACTIVE_STATES, Capture, CaptureState
from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.dispatch import HostUnreachable
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_node_host
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.labs import selectors as lab_selectors
from labplan import labfile as labfile_module
from labplan import messages

log = logging.getLogger(__name__)

MAX_FILTER = 1024
# An active capture the agent has not reported ended this long after its time bound is
# marked failed: its host went away, or its agent restarted.
REPORT_GRACE = timedelta(seconds=120)


def pcap_key(capture: Capture) -> str:
    return messages.pcap_key(capture.key)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


# --- what users do ---------------------------------------------------------------------


def capture_start(
    *,
    deployment: Deployment,
    actor: User,
    node: str,
    interface: str,
    filter: str = "",
    max_bytes: int | None = None,
    max_seconds: int | None = None,
) -> Capture:
    """Start tcpdump on `interface` of `node`; the capture once the agent runs it. A
    filter tcpdump refuses is a field error on `filter`, with tcpdump's words."""
    _require_change(actor, deployment)
    if deployment.status != DeploymentStatus.RUNNING:
        raise Conflict.for_field(
            "status",
            f"Packets are captured only in a running deployment; this one is {deployment.status}.",
        )
    _check_interface(deployment, node, interface)
    text = _checked_filter(filter)
    size = _checked_bound("max_bytes", max_bytes, conf.value("LABMGR_CAPTURE_MAX_BYTES"), "bytes")
    seconds = _checked_bound(
        "max_seconds", max_seconds, conf.value("LABMGR_CAPTURE_MAX_SECONDS"), "seconds"
    )
    if deployment.host is None:
        raise Conflict.for_field("host", "The deployment has no host.")
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        limit = conf.value("LABMGR_CAPTURE_MAX_RUNNING")
        if locked.captures.filter(state__in=ACTIVE_STATES).count() >= limit:
            raise Conflict(
                f"{limit} captures already run in this deployment; stop one to start another."
            )
        capture = Capture.objects.create(
            deployment=locked,
            owner=actor,
            key=secrets.token_hex(16),
            node=node,
            interface=interface,
            filter=text,
            max_bytes=size,
            max_seconds=seconds,
        )
    return _send_start(capture, deployment)


def capture_stop(*, capture: Capture, actor: User) -> Capture:
    """Ask the agent to stop the capture; it sends the file, and the capture becomes
    `stopped`. Stopping an ended capture changes nothing."""
    _require_change(actor, capture.deployment)
    updated = Capture.objects.filter(
        pk=capture.pk, state__in=[CaptureState.STARTING, CaptureState.RUNNING]
    ).update(state=CaptureState.STOPPING)
    if updated:
        _send_stop(capture)
    capture.refresh_from_db()
    return capture


def capture_delete(*, capture: Capture, actor: User) -> None:
    """Forget a capture and its file; a running one is stopped first."""
    _require_change(actor, capture.deployment)
    if capture.state in (CaptureState.STARTING, CaptureState.RUNNING):
        _send_stop(capture)
    capture.delete()


# --- what agents report ----------------------------------------------------------------


def capture_is_on(*, key: str, host: str) -> bool:
    """Whether host `host` runs the capture `key` (the host of its node): whose reports
    about it count. Reports about no capture change nothing either way."""
    capture = Capture.objects.filter(key=key).select_related("deployment__host").first()
    if capture is None or not host:
        return True
    runs_on = deployment_node_host(capture.deployment, capture.node)
    if runs_on is not None and runs_on.slug == host:
        return True
    log.warning("refused a report on capture %s from host %s, which does not run it", key, host)
    return False


def capture_progress_record(*, key: str, packets: int, bytes: int) -> None:
    """The live count of a running capture (a late report of an ended one is ignored)."""
    Capture.objects.filter(key=key, state=CaptureState.STARTING).update(state=CaptureState.RUNNING)
    Capture.objects.filter(key=key, state__in=ACTIVE_STATES).update(packets=packets, bytes=bytes)


def _chunks(client: redis.Redis, redis_key: str) -> list[bytes]:
    """The pieces of a capture's file on Redis, in order (the client answers bytes: it
    does not decode responses)."""
    return cast(list[bytes], client.lrange(redis_key, 0, -1))


def capture_finished_record(
    *,
    key: str,
    state: str,
    packets: int,
    bytes: int,
    reason: str,
    chunks: int,
    sha256: str | None = None,
) -> None:
    """Store the file the agent pushed on Redis and the capture's end. Idempotent: a
    repeated report, or one for a deleted capture, only removes what is left in Redis.
    `sha256` (the agent's digest of the file, in its signed report) must match what
    arrived on Redis, else the capture fails and keeps nothing."""
    client = redis_client()
    redis_key = messages.pcap_key(key)
    try:
        capture = Capture.objects.filter(key=key, state__in=ACTIVE_STATES).first()
        if capture is None:
            return
        parts = _chunks(client, redis_key) if chunks else []
        ended = CaptureState.FAILED if state == CaptureState.FAILED else CaptureState.STOPPED
        if len(parts) != chunks:
            ended, reason = CaptureState.FAILED, "the capture's file was lost on its way"
            parts, packets, bytes = [], 0, 0
        elif sha256 and hashlib.sha256(b"".join(parts)).hexdigest() != sha256:
            ended, reason = CaptureState.FAILED, "the capture's file was changed on its way"
            parts, packets, bytes = [], 0, 0
        Capture.objects.filter(pk=capture.pk, state__in=ACTIVE_STATES).update(
            state=ended,
            packets=packets,
            bytes=bytes,
            reason=reason[:500],
            pcap=b"".join(parts) if parts else None,
            finished=timezone.now(),
        )
    finally:
        client.delete(redis_key)


# --- housekeeping ----------------------------------------------------------------------


def captures_expire() -> int:
    """Fail the active captures no agent reported ended in time, and delete the ended
    ones older than the retention; how many were changed."""
    now = timezone.now()
    failed = 0
    for capture in Capture.objects.filter(state__in=ACTIVE_STATES).only(
        "pk", "created", "max_seconds"
    ):
        if capture.created + timedelta(seconds=capture.max_seconds) + REPORT_GRACE < now:
            failed += Capture.objects.filter(pk=capture.pk, state__in=ACTIVE_STATES).update(
                state=CaptureState.FAILED,
                reason="the host did not report the end of this capture",
                finished=now,
            )
    retention = timedelta(seconds=conf.value("LABMGR_CAPTURE_RETENTION"))
    deleted, _ = (
        Capture.objects.exclude(state__in=ACTIVE_STATES).filter(finished__lt=now - retention)
    ).delete()
    return failed + deleted


# --- helpers ---------------------------------------------------------------------------


def _require_change(actor: User, deployment: Deployment) -> None:
    if not lab_selectors.lab_can_change(user=actor, lab=deployment.lab):
        raise NotAllowed("This lab is shared with you to read; only its owner may capture.")


def node_interfaces(deployment: Deployment, node: str) -> list[str] | None:
    """The interfaces the lab gives a node: its networks' (not a host network's: those are
    the host's), then its ends of point-to-point links; None when the deployment has no
    such node."""
    lab = labfile_module.validate(deployment.labfile)
    found = next((n for n in lab.nodes if n.name == node), None)
    if found is None:
        return None
    attached = [a.ifname for a in found.networks if a.ifname is not None]
    linked = [end.ifname for link in lab.links for end in link.ends if end.node == node]
    return attached + linked


def _check_interface(deployment: Deployment, node: str, interface: str) -> None:
    interfaces = node_interfaces(deployment, node)
    if interfaces is None:
        raise ApplicationError.for_field("node", f"node: the deployment has no node {node!r}.")
    if interface not in interfaces:
        has = ", ".join(interfaces) if interfaces else "none of its own"
        raise ApplicationError.for_field(
            "interface", f"interface: node {node} has no interface {interface!r} (it has {has})."
        )


def _checked_filter(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_FILTER:
        raise ApplicationError.for_field(
            "filter", f"filter: at most {MAX_FILTER} characters, this one has {len(text)}."
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ApplicationError.for_field("filter", "filter: one line, without control characters.")
    return text


def _checked_bound(field: str, asked: int | None, limit: int, unit: str) -> int:
    if asked is None:
        return limit
    if not 1 <= asked <= limit:
        raise ApplicationError.for_field(field, f"{field}: from 1 to {limit} {unit}.")
    return asked


def _send_start(capture: Capture, deployment: Deployment) -> Capture:
    host = deployment_node_host(deployment, capture.node)  # a lab may span several hosts
    if host is None:
        raise Conflict.for_field("node", f"No host runs node {capture.node!r}.")
    try:
        outcome = dispatch.start(
            host=host.slug,
            capture=capture.key,
            deployment=deployment.pk,
            token=deployment.token,
            node=capture.node,
            interface=capture.interface,
            filter=capture.filter,
            max_bytes=capture.max_bytes,
            max_seconds=capture.max_seconds,
        )
    except HostUnreachable:
        # It may still start late: the agent is told to stop it, and it is marked failed.
        _send_stop(capture)
        _fail(capture, "the host did not start the capture in time")
        raise
    except ApplicationError as exc:
        _fail(capture, exc.message)
        raise
    if not outcome["ok"]:
        capture.delete()  # a refused request leaves nothing behind
        field = outcome["field"] if outcome["field"] in ("filter", "interface") else "node"
        message = f"{field}: {outcome['error']}"
        raise ApplicationError.for_field(field, message)
    Capture.objects.filter(pk=capture.pk, state=CaptureState.STARTING).update(
        state=CaptureState.RUNNING
    )
    capture.refresh_from_db()
    return capture


def _send_stop(capture: Capture) -> None:
    host = deployment_node_host(capture.deployment, capture.node)
    if host is None:
        return
    try:
        dispatch.stop(host=host.slug, capture=capture.key)
    except Exception:  # the broker is away: the time bound ends the capture anyway
        log.warning("could not ask %s to stop capture %s", host.slug, capture.key, exc_info=True)


def _fail(capture: Capture, reason: str) -> None:
    Capture.objects.filter(pk=capture.pk, state__in=ACTIVE_STATES).update(
        state=CaptureState.FAILED, reason=reason[:500], finished=timezone.now()
    )
