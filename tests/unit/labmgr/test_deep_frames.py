"""A websocket frame of JSON nested 100,000 levels deep ends nothing: the lab's and the
dashboard's streams ignore what a browser sends unread and go on delivering events; a
terminal passes such a frame on as keystrokes, like any text that is no control message."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from labmgr.deployments import tasks as deployment_tasks
from labmgr.deployments import terminal
from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.routing import websocket_urlpatterns
from tests.unit.labmgr.conftest import Dispatched

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

DEEP = '{"resize": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def communicator(path: str, user: Any) -> WebsocketCommunicator:
    client = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    client.scope["user"] = user
    return client


def _running(lab: Lab, user: User) -> None:
    deployment = deployment_deploy(lab=lab, actor=user)
    deployment_tasks.deployment_result(
        deployment=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )


@pytest.mark.parametrize("path", ["/ws/labs/{lab}/", "/ws/me/"])
async def test_a_stream_outlives_a_deep_frame(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, path: str
) -> None:
    client = communicator(path.format(lab=alice_lab.pk), alice)
    connected, _ = await client.connect()
    assert connected
    await client.send_to(text_data=DEEP)
    await client.send_to(text_data="not json at all")
    await database_sync_to_async(_running)(alice_lab, alice)
    event = await client.receive_json_from(timeout=2)
    assert (event["type"], event["status"]) == ("deployment.status", "deploying")
    await client.disconnect()


def test_a_terminal_takes_a_deep_frame_as_keystrokes() -> None:
    assert terminal._control(DEEP) == DEEP.encode()
    assert terminal._control('{"resize": [80, 24]}') == b'{"resize": [80, 24]}'
