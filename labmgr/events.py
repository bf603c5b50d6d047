"""The one publisher of browser events (Channels groups `lab.<id>`, `host.<slug>`, `user.<id>`).

Every payload is a TypedDict whose `type` names the event; the Channels message type is the
same string, so a consumer has one handler per event type. Events leave only after the
database transaction that caused them commits: a browser never sees a state the database
then rolls back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any, Literal, TypedDict

from channels.layers import get_channel_layer
from django.db import transaction

# The groups of labs and hosts are named by the contract (docs/messages.md).
from labplan.messages import host_group as host_group
from labplan.messages import lab_group as lab_group

log = logging.getLogger(__name__)


class DeploymentStatusEvent(TypedDict):
    type: Literal["deployment.status"]
    lab: int
    deployment: int
    status: str
    reason: str
    host: str | None
    drift: dict[str, list[str]] | None


class DeploymentStepEvent(TypedDict):
    type: Literal["deployment.step"]
    lab: int
    deployment: int
    seq: int
    name: str
    target: str
    status: str
    message: str
    total: int | None
    seconds: float | None
    host: str | None  # the host that ran the step, None for the control plane's own
    actor: str  # who asked for it (a live change), "" for the agents' own steps


class DeploymentLiveEvent(TypedDict):
    """A live change was made (or refused): the deployment's live state now."""

    type: Literal["deployment.live"]
    lab: int
    deployment: int
    live: dict[str, Any]
    action: str
    ok: bool
    error: str
    actor: str


class ScenarioProgressEvent(TypedDict):
    """A scenario run started, paused, resumed, ended, or ran a step (`result`)."""

    type: Literal["scenario.progress"]
    lab: int
    deployment: int
    run: dict[str, Any]
    result: dict[str, Any] | None


class MetricsSampleEvent(TypedDict):
    type: Literal["metrics.sample"]
    lab: int
    deployment: int
    samples: list[dict[str, Any]]


class HostStatusEvent(TypedDict):
    type: Literal["host.status"]
    host: str
    status: str


class HostImagesEvent(TypedDict):
    """A host's image list or the outcome of its last image action changed; the Images
    page reads the list again (`GET /api/hosts/{id}/images`, as the user may see it)."""

    type: Literal["host.images"]
    host: str
    ok: bool | None  # the last action's outcome, None while one is under way (or none yet)
    status: str
    count: int


class ReservationWarningEvent(TypedDict):
    type: Literal["reservation.warning"]
    reservation: int
    host: str
    end: str
    seconds_left: int
    final: bool


class ReservationEndedEvent(TypedDict):
    type: Literal["reservation.ended"]
    reservation: int
    host: str
    status: str
    destroyed: list[int]  # deployments taken down


class SessionEndedEvent(TypedDict):
    """Not for browsers: tells a user's open terminals that the user logged out."""

    type: Literal["session.ended"]
    user: int


Event = (
    DeploymentStatusEvent
    | DeploymentStepEvent
    | DeploymentLiveEvent
    | ScenarioProgressEvent
    | MetricsSampleEvent
    | HostStatusEvent
    | HostImagesEvent
    | ReservationWarningEvent
    | ReservationEndedEvent
    | SessionEndedEvent
)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def publish(groups: list[str], event: Event) -> None:
    """Send `event` to every group once the current transaction commits (at once outside
    one). A broken channel layer is logged, never raised: the database is the truth and a
    browser catches up from the API."""
    transaction.on_commit(lambda: _send(groups, event))


def _send(groups: list[str], event: Event) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message: dict[str, Any] = dict(event)
    sending = asyncio.run_coroutine_threadsafe(_send_all(layer, groups, message), _loop())
    try:
        sending.result(timeout=SEND_TIMEOUT)
    except Exception:  # a Redis restart must not fail the task that changed the state
        sending.cancel()
        log.warning("could not publish %s to %s", event["type"], groups, exc_info=True)


async def _send_all(layer: Any, groups: list[str], message: dict[str, Any]) -> None:
    for group in groups:
        await layer.group_send(group, message)


SEND_TIMEOUT = 5.0  # seconds; past it the event is dropped and logged
_publisher: tuple[int, asyncio.AbstractEventLoop] | None = None
_publisher_lock = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    """This process's publishing loop, running in a thread of its own. The channel layer
    keeps one Redis connection per loop: one long-lived loop publishes over one
    connection, where a loop per event (async_to_sync) would connect every time."""
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid():  # new, or forked
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="events", daemon=True).start()
            _publisher = (os.getpid(), loop)
        return _publisher[1]
