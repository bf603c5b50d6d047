"""The terminal relay: `ws/labs/{id}/nodes/{node}/terminal` <-> a shell on a pty in the node.

Bytes go through Redis lists (docs/messages.md), so the host needs no inbound port:
`labmgr:term:<session>:in` carries keystrokes and `{"resize": [cols, rows]}` frames to the
agent, `labmgr:term:<session>:out` carries output back; an empty frame ends the session.

The browser sends keystrokes as binary frames, and JSON text frames for control:
`{"resize": [cols, rows]}`, or `{"data": "text"}` for keystrokes as text. Output comes as
binary frames. Only the lab's owner or an admin may open one; it is closed when the user
logs out, when the lab stops running, and after LABMGR_TERMINAL_IDLE seconds of silence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any, Protocol, cast
from urllib.parse import parse_qs

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from redis.exceptions import RedisError

from labmgr import events, jsondepth
from labmgr.deployments import dispatch, lifecycle
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_node_host
from labmgr.errors import ApplicationError
from labmgr.labs.consumers import REFUSED
from labmgr.labs.models import Lab
from labmgr.labs.selectors import lab_get_visible
from labplan.messages import terminal_keys

log = logging.getLogger(__name__)

DEFAULT_SIZE = (80, 24)
MAX_FRAME = 64 * 1024
POLL_SECONDS = 1.0
# Statuses after which the lab's nodes are gone or going: their terminals close.
CLOSING_STATUSES = frozenset({"destroying", "destroyed", "cancelled", "failed"})


class TerminalPipe(Protocol):
    async def send(self, frame: bytes) -> None: ...
    async def receive(self, timeout: float) -> bytes | None: ...
    async def close(self) -> None: ...


class RedisPipe:
    """The web side of a session's two Redis lists."""

    def __init__(self, session: str) -> None:
        self.idle = int(settings.LABMGR_TERMINAL_IDLE)
        self.in_key, self.out_key = terminal_keys(session)
        self.redis = aioredis.from_url(settings.REDIS_URL)

    async def send(self, frame: bytes) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self.in_key, frame)
            pipe.expire(self.in_key, self.idle)
            await pipe.execute()

    async def receive(self, timeout: float) -> bytes | None:
        item = await self.redis.blpop([self.out_key], timeout=timeout)
        # The client does not decode responses: the frame is the bytes the agent pushed.
        return None if item is None else cast(bytes, item[1])

    async def close(self) -> None:
        try:
            await self.send(b"")
        finally:
            await self.redis.aclose()


def open_pipe(session: str) -> TerminalPipe:
    return RedisPipe(session)


def authorize(
    user: AbstractBaseUser | AnonymousUser | None, lab_id: int, node: str
) -> Deployment | None:
    """The running deployment whose node the user may open a terminal in, else None."""
    # The scope's user is a lazy proxy whose class is the wrapped user's: only a
    # signed-in user is a `User`.
    if not isinstance(user, User):
        return None
    try:
        lab = lab_get_visible(user=user, pk=lab_id)
        return lifecycle.deployment_for_terminal(lab=lab, actor=user, node=node)
    except (Lab.DoesNotExist, ApplicationError):
        return None


class TerminalConsumer(AsyncWebsocketConsumer):
    pipe: TerminalPipe | None = None
    pump: asyncio.Task[None] | None = None
    deployment_id: int | None = None

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        user = self.scope.get("user")
        deployment = await database_sync_to_async(authorize)(
            user, int(kwargs["lab"]), kwargs["node"]
        )
        host = (
            None
            if deployment is None
            else await database_sync_to_async(deployment_node_host)(deployment, kwargs["node"])
        )
        if user is None or deployment is None or host is None:
            await self.close(code=REFUSED)
            return
        self.deployment_id = deployment.pk
        self.groups_joined = [events.lab_group(deployment.lab_id), events.user_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        session = secrets.token_urlsafe(18)
        self.pipe = open_pipe(session)
        self.last_activity = time.monotonic()
        cols, rows = _size(self.scope.get("query_string", b""))
        await sync_to_async(dispatch.terminal_open)(
            host=host.slug,  # the node's own host
            session=session,
            token=deployment.token,
            node=kwargs["node"],
            cols=cols,
            rows=rows,
        )
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        """Agent output to the browser, until the agent ends the session or it idles out."""
        assert self.pipe is not None
        while True:
            try:
                frame = await self.pipe.receive(POLL_SECONDS)
            except RedisError:
                # Redis is restarting: keep the browser's socket and try again.
                log.info("terminal output interrupted; retrying", exc_info=True)
                await asyncio.sleep(POLL_SECONDS)
                frame = None
            if frame == b"":
                await self._end()
                return
            if frame is not None:
                self.last_activity = time.monotonic()
                await self.send(bytes_data=frame)
            elif time.monotonic() - self.last_activity > settings.LABMGR_TERMINAL_IDLE:
                await self._end()
                return

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.pipe is None:
            return
        frame = bytes_data if bytes_data is not None else _control(text_data or "")
        if frame:
            self.last_activity = time.monotonic()
            await self.pipe.send(frame[:MAX_FRAME])

    async def disconnect(self, code: int) -> None:
        await self._release()

    async def _end(self) -> None:
        await self._release()
        await self.close()

    async def _release(self) -> None:
        pipe, self.pipe = self.pipe, None
        if self.pump is not None and self.pump is not asyncio.current_task():
            self.pump.cancel()
        if pipe is not None:
            try:
                await pipe.close()
            except RedisError:
                log.info("could not tell the agent a terminal ended", exc_info=True)
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    # Events of the lab's and the user's groups.
    async def deployment_status(self, event: events.DeploymentStatusEvent) -> None:
        if event["deployment"] == self.deployment_id and event["status"] in CLOSING_STATUSES:
            await self._end()

    async def session_ended(self, event: events.SessionEndedEvent) -> None:
        await self._end()

    async def deployment_step(self, event: events.DeploymentStepEvent) -> None:
        """Not a terminal's business."""

    async def metrics_sample(self, event: events.MetricsSampleEvent) -> None:
        """Not a terminal's business."""

    async def host_status(self, event: events.HostStatusEvent) -> None:
        """Not a terminal's business."""


def _control(text: str) -> bytes:
    """A browser's text frame as what the agent reads from the input list."""
    try:
        message = jsondepth.loads(text)
    except ValueError:  # not JSON, or nested too deep to be a control message: keystrokes
        return text.encode()
    if isinstance(message, dict) and "resize" in message:
        cols, rows = _checked_size(message["resize"])
        return json.dumps({"resize": [cols, rows]}).encode()
    if isinstance(message, dict) and isinstance(message.get("data"), str):
        return str(message["data"]).encode()
    return text.encode()


def _checked_size(value: Any) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in value)
    except (TypeError, ValueError):
        return DEFAULT_SIZE
    return max(1, min(cols, 1000)), max(1, min(rows, 1000))


def _size(query_string: bytes) -> tuple[int, int]:
    query = parse_qs(query_string.decode("latin-1"))
    return _checked_size([query.get("cols", ["80"])[0], query.get("rows", ["24"])[0]])
