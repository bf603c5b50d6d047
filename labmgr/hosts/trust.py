"""Who may speak for whom on the broker: hosts' keys, and the signed messages between the
control plane and the agents (labplan.envelope, docs/messages.md "Signed messages").

A host is registered by an admin (`manage.py host_register`, or Hosts in the admin),
which makes its key; the agent gets it once, out of band. Everything sent to an agent is
signed with its host's key; everything an agent sends is checked against the key of the
host it claims to be, so a host that was never registered, a forged report, one host
speaking for another's deployment, or a report played again is refused before any
service sees it. An admin rotates a key: the new one travels to the agent wrapped under
the old, and is used once the agent confirms it.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from celery import Task
from django.db import IntegrityError, transaction
from django.utils import timezone

from labmgr.celery import app
from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host, SeenMessage
from labplan import envelope, messages
from labplan.envelope import Opened, Refused
from labplan.messages import AgentTask, ControlTask, RekeyArgs

log = logging.getLogger(__name__)


class HostNotRegistered(ApplicationError):
    """The host has no key: no agent can be told anything."""

    status = 409


def key_new() -> str:
    return secrets.token_hex(envelope.KEY_BYTES)


def new_id() -> str:
    return uuid.uuid4().hex


# --- registration and rotation -----------------------------------------------------------


def host_register(*, slug: str, name: str | None = None) -> Host:
    """The host of that slug, made if new, with a key if it had none."""
    with transaction.atomic():
        host, _ = Host.objects.select_for_update().get_or_create(
            slug=slug, defaults={"name": name or slug}
        )
        if not host.key:
            host.key = key_new()
            host.save(update_fields=["key", "updated"])
    return host


def host_key_rotate(*, host: Host) -> None:
    """Make the host a new key and send it to its agent, wrapped under the current one.
    Until the agent confirms (`labmgr.control.rekeyed`), its reports may be signed with
    either key and the control plane still signs with the old."""
    if not host.key:
        raise HostNotRegistered(f"Host {host} has no key yet: register it first.")
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        locked.next_key = key_new()
        locked.save(update_fields=["next_key", "updated"])
        slug, current, new = locked.slug, bytes.fromhex(locked.key), bytes.fromhex(locked.next_key)

        def send() -> None:
            task_id = new_id()
            args: RekeyArgs = {"key": envelope.wrap_key(current, new, task_id)}
            _send_sealed(AgentTask.REKEY, slug, current, task_id, args)

        transaction.on_commit(send)
    host.refresh_from_db()


def host_key_confirmed(*, host: Host, key: int) -> None:
    """The agent answered a rotation signed with the new key (`key` 1): use it now."""
    if key != 1:
        log.warning("host %s confirmed a rotation with its old key: ignored", host.slug)
        return
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        if not locked.next_key:
            return
        locked.key, locked.next_key = locked.next_key, ""
        locked.key_rotated = timezone.now()
        locked.save(update_fields=["key", "next_key", "key_rotated", "updated"])
    log.info("host %s now uses its new key", host.slug)


def install_command(host: Host) -> str:
    """What an admin runs as root on the host to give its agent the key."""
    return f"echo {host.key} | python -m workers key set"


# --- to agents --------------------------------------------------------------------------


def send(task: AgentTask, slug: str, kwargs: Mapping[str, Any]) -> Any:
    """Send `task` to the agent of host `slug`, signed with its key: Celery's result."""
    key = Host.objects.filter(slug=slug).values_list("key", flat=True).first()
    if not key:
        raise HostNotRegistered(f"Host {slug} is not registered: an admin registers it first.")
    return _send_sealed(task, slug, bytes.fromhex(key), new_id(), kwargs)


def _send_sealed(
    task: AgentTask, slug: str, key: bytes, task_id: str, kwargs: Mapping[str, Any]
) -> Any:
    signed = envelope.seal(key, task=task, host=slug, id=task_id, issued=time.time(), kwargs=kwargs)
    return app.send_task(
        str(task),
        kwargs={envelope.FIELD: signed},
        task_id=task_id,
        queue=messages.host_queue(slug),
    )


def open_answer(task: AgentTask, slug: str, value: object, task_id: str) -> Any:
    """What the agent of `slug` answered to `task` (its signed Celery result), or
    Refused: an answer it did not sign is as good as none."""
    if isinstance(value, dict) and set(value) == {"refused"}:
        raise Refused(f"the agent refused the message: {value['refused']}")
    keys = _keys(Host.objects.filter(slug=slug).first())
    opened = envelope.open_(
        value,
        keys,
        task=envelope.result_task(task),
        host=slug,
        now=time.time(),
        max_age=envelope.fresh_for(task) + 3600,
        id=task_id,
    )
    return opened.kwargs.get("value")


# --- from agents ------------------------------------------------------------------------


def _keys(host: Host | None) -> list[bytes]:
    if host is None or not host.key:
        return []
    return [bytes.fromhex(host.key)] + ([bytes.fromhex(host.next_key)] if host.next_key else [])


def open_report(
    task: ControlTask, kwargs: Mapping[str, Any], request_id: str | None
) -> tuple[Host, Opened]:
    """The registered host a report comes from and what it says, or Refused. The report's
    id is remembered while the report stays fresh: the same report again is refused."""
    if set(kwargs) != {envelope.FIELD} or not request_id:
        raise Refused("the message is not signed")
    signed = kwargs[envelope.FIELD]
    slug = envelope.claimed_host(signed)
    host = Host.objects.filter(slug=slug).first()
    keys = _keys(host)
    if host is None or not keys:
        raise Refused(f"host {slug!r} is not registered")
    max_age = envelope.fresh_for(task)
    opened = envelope.open_(
        signed, keys, task=task, host=slug, now=time.time(), max_age=max_age, id=request_id
    )
    claimed = opened.kwargs.get("host")
    if claimed not in (None, "", slug):
        raise Refused(f"host {slug!r} signed a report naming host {claimed!r}")
    expires = timezone.now() + timedelta(seconds=max_age + envelope.CLOCK_SKEW)
    try:
        with transaction.atomic():
            SeenMessage.objects.create(id=opened.id, host=host, expires=expires)
    except IntegrityError as exc:
        raise Refused("the report was received before: a replay") from exc
    return host, opened


def seen_messages_prune() -> int:
    """Forget reports that are too old to be accepted anyway."""
    count, _ = SeenMessage.objects.filter(expires__lt=timezone.now()).delete()
    return count


Report = Callable[..., None]


def agent_report(name: ControlTask) -> Callable[[Report], Report]:
    """Register `function(host=<slug>, **kwargs)` as the control task `name`, run only for
    a report a registered host signed; `function` itself stays callable as it is."""

    def register(function: Report) -> Report:
        @functools.wraps(function)
        def task(self: Task[Any, Any], /, **kwargs: Any) -> None:
            try:
                host, opened = open_report(name, kwargs, self.request.id)
            except Refused as exc:
                log.warning("refused %s %s: %s", name, self.request.id, exc)
                return
            arguments = {**opened.kwargs, "host": host.slug}
            if name == ControlTask.REKEYED:
                host_key_confirmed(host=host, key=opened.key)
                return
            function(**arguments)

        app.task(name=str(name), bind=True)(task)
        return function

    return register


@agent_report(ControlTask.REKEYED)
def rekeyed(*, host: str) -> None:
    """An agent took its new key (handled in `agent_report`, which knows which key signed)."""
