"""The lab's live stream and the node terminal, through channels' WebsocketCommunicator
with the in-memory channel layer."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone
from rest_framework.authtoken.models import Token

from labmgr.accounts.tokens import token_issue
from labmgr.asgi import application
from labmgr.deployments import tasks as deployment_tasks
from labmgr.deployments import terminal
from labmgr.deployments.lifecycle import deployment_deploy, deployment_destroy_lab
from labmgr.deployments.models import Deployment
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.routing import websocket_urlpatterns
from tests.unit.labmgr.conftest import Dispatched

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def communicator(path: str, user: Any) -> WebsocketCommunicator:
    client = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    client.scope["user"] = user
    return client


def _running(lab: Lab, user: User) -> Deployment:
    deployment = deployment_deploy(lab=lab, actor=user)
    deployment_tasks.deployment_result(
        deployment=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )
    return deployment


async def test_the_owner_receives_status_and_step_events(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched
) -> None:
    client = communicator(f"/ws/labs/{alice_lab.pk}/", alice)
    connected, _ = await client.connect()
    assert connected
    deployment = await database_sync_to_async(_running)(alice_lab, alice)
    events = [await client.receive_json_from(timeout=2) for _ in range(2)]
    assert [(e["type"], e["status"]) for e in events] == [
        ("deployment.status", "deploying"),
        ("deployment.status", "running"),
    ]
    assert events[1]["deployment"] == deployment.pk
    await client.disconnect()


@pytest.mark.parametrize(
    ("persona", "allowed"), [("bob", True), ("root", True), ("charlie", False)]
)
async def test_only_people_who_may_see_the_lab_subscribe(
    request: pytest.FixtureRequest, shared_lab: Lab, persona: str, allowed: bool
) -> None:
    user = await database_sync_to_async(request.getfixturevalue)(persona)
    client = communicator(f"/ws/labs/{shared_lab.pk}/", user)
    connected, code = await client.connect()
    assert (connected, code) == ((True, None) if allowed else (False, 4403))
    await client.disconnect()


async def test_anonymous_visitors_are_refused(alice_lab: Lab) -> None:
    connected, code = await communicator(f"/ws/labs/{alice_lab.pk}/", AnonymousUser()).connect()
    assert (connected, code) == (False, 4403)


async def test_a_foreign_origin_is_refused(alice_lab: Lab) -> None:
    client = WebsocketCommunicator(
        application, f"/ws/labs/{alice_lab.pk}/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await client.connect()
    assert not connected


class FakePipe:
    def __init__(self) -> None:
        self.to_agent: list[bytes] = []
        self.from_agent: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    async def send(self, frame: bytes) -> None:
        self.to_agent.append(frame)

    async def receive(self, timeout: float) -> bytes | None:
        try:
            return await asyncio.wait_for(self.from_agent.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def pipe(monkeypatch: pytest.MonkeyPatch) -> FakePipe:
    fake = FakePipe()
    monkeypatch.setattr(terminal, "open_pipe", lambda session: fake)
    monkeypatch.setattr(terminal, "POLL_SECONDS", 0.05)
    return fake


async def test_a_terminal_relays_keystrokes_resizes_and_output(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, pipe: FakePipe
) -> None:
    deployment = await database_sync_to_async(_running)(alice_lab, alice)
    client = communicator(f"/ws/labs/{alice_lab.pk}/nodes/web/terminal?cols=100&rows=30", alice)
    client.scope["query_string"] = b"cols=100&rows=30"
    connected, _ = await client.connect()
    assert connected
    await asyncio.sleep(0.1)
    [(_task, host, kwargs)] = [s for s in dispatched.sent if s[0] == "terminal_open"]
    assert (host, kwargs["token"], kwargs["node"], kwargs["cols"], kwargs["rows"]) == (
        "local",
        deployment.token,
        "web",
        100,
        30,
    )
    await client.send_to(bytes_data=b"hostname\n")
    await client.send_to(text_data=json.dumps({"resize": [120, 40]}))
    await pipe.from_agent.put(b"web\n")
    assert await client.receive_from(timeout=2) == b"web\n"
    await asyncio.sleep(0.1)  # the input frames are handled by the consumer's own task
    assert pipe.to_agent == [b"hostname\n", b'{"resize": [120, 40]}']
    await client.disconnect()
    assert pipe.closed


async def test_destroying_the_lab_closes_its_terminals(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, pipe: FakePipe
) -> None:
    await database_sync_to_async(_running)(alice_lab, alice)
    client = communicator(f"/ws/labs/{alice_lab.pk}/nodes/web/terminal", alice)
    assert (await client.connect())[0]
    await database_sync_to_async(deployment_destroy_lab)(lab=alice_lab, actor=alice)
    assert (await client.receive_output(timeout=2))["type"] == "websocket.close"
    assert pipe.closed


async def test_logging_out_closes_the_users_terminals(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, pipe: FakePipe
) -> None:
    from django.contrib.auth.signals import user_logged_out
    from django.test import RequestFactory

    await database_sync_to_async(_running)(alice_lab, alice)
    client = communicator(f"/ws/labs/{alice_lab.pk}/nodes/web/terminal", alice)
    assert (await client.connect())[0]
    # As django.contrib.auth.logout sends it: with the request (django-axes reads it).
    request = RequestFactory().post("/logout/")
    await database_sync_to_async(user_logged_out.send)(sender=User, request=request, user=alice)
    assert (await client.receive_output(timeout=2))["type"] == "websocket.close"


async def test_an_idle_terminal_is_closed(
    alice: User,
    alice_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    pipe: FakePipe,
    settings: Any,
) -> None:
    settings.LABMGR_TERMINAL_IDLE = 0.2
    await database_sync_to_async(_running)(alice_lab, alice)
    client = communicator(f"/ws/labs/{alice_lab.pk}/nodes/web/terminal", alice)
    assert (await client.connect())[0]
    assert (await client.receive_output(timeout=3))["type"] == "websocket.close"


@pytest.mark.parametrize(
    ("persona", "node"), [("bob", "web"), ("charlie", "web"), ("alice", "nope")]
)
async def test_terminals_are_for_the_owner_or_admins_and_real_nodes_only(
    request: pytest.FixtureRequest,
    alice: User,
    shared_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    pipe: FakePipe,
    persona: str,
    node: str,
) -> None:
    await database_sync_to_async(_running)(shared_lab, alice)
    user = await database_sync_to_async(request.getfixturevalue)(persona)
    client = communicator(f"/ws/labs/{shared_lab.pk}/nodes/{node}/terminal", user)
    assert await client.connect() == (False, 4403)
    assert "terminal_open" not in dispatched.tasks()


async def test_a_terminal_needs_a_running_lab(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, pipe: FakePipe
) -> None:
    client = communicator(f"/ws/labs/{alice_lab.pk}/nodes/web/terminal", alice)
    assert await client.connect() == (False, 4403)


def _token_of(user: User) -> str:
    return str(token_issue(user=user).key)


def token_communicator(path: str, header: bytes) -> WebsocketCommunicator:
    """A websocket through the whole ASGI stack (origin check, session, token), as the
    command line's shell opens one."""
    headers = [(b"origin", b"http://localhost"), (b"authorization", header)]
    return WebsocketCommunicator(application, path, headers=headers)


async def test_a_token_opens_the_owners_terminal_and_nobody_elses(
    alice: User,
    charlie: User,
    alice_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    pipe: FakePipe,
    settings: Any,
) -> None:
    settings.ALLOWED_HOSTS = ["localhost"]
    await database_sync_to_async(_running)(alice_lab, alice)
    path = f"/ws/labs/{alice_lab.pk}/nodes/web/terminal"
    own = await database_sync_to_async(_token_of)(alice)
    client = token_communicator(path, f"Token {own}".encode())
    connected, _ = await client.connect()
    assert connected
    await pipe.from_agent.put(b"web$ ")
    assert await client.receive_from(timeout=2) == b"web$ "
    await client.disconnect()

    other = await database_sync_to_async(_token_of)(charlie)
    for header in (f"Token {other}".encode(), b"Token not-a-token", b"Bearer " + own.encode()):
        refused = token_communicator(path, header)
        assert await refused.connect() == (False, 4403), header


async def test_an_expired_token_opens_nothing(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.LABMGR_API_TOKEN_TTL = 1
    token = await database_sync_to_async(_token_of)(alice)

    def age() -> None:
        Token.objects.filter(key=token).update(created=timezone.now() - timedelta(hours=1))

    await database_sync_to_async(age)()
    client = token_communicator(f"/ws/labs/{alice_lab.pk}/", f"Token {token}".encode())
    assert await client.connect() == (False, 4403)
