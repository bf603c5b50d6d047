"""The dashboard's stream `ws/me/`: who hears which lab's status and the hosts' state,
through channels' WebsocketCommunicator with the in-memory channel layer."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from labmgr import events
from labmgr.accounts.services import classroom_create
from labmgr.deployments import tasks as deployment_tasks
from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.deployments.models import Deployment
from labmgr.hosts.models import Host
from labmgr.hosts.services import hosts_mark_silent_offline
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_update
from labmgr.reservations.notify import reservation_group
from labmgr.routing import websocket_urlpatterns
from tests.unit.labmgr.conftest import Dispatched, small_labfile

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]
QUIET = 0.3  # seconds to wait for an event that must not come


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def connected(user: Any) -> WebsocketCommunicator:
    client = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/me/")
    client.scope["user"] = user
    ok, code = await client.connect()
    assert ok, code
    return client


def _deploy(lab: Lab, user: User) -> Deployment:
    deployment = deployment_deploy(lab=lab, actor=user)
    deployment_tasks.deployment_result(
        deployment=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )
    return deployment


def _on_a_subnet_of_its_own(lab: Lab) -> None:
    """Two labs running on one host never route one subnet."""
    tree = small_labfile(lab.name)
    tree["networks"]["lan"]["subnet"] = "10.11.0.0/24"
    tree["nodes"]["web"]["networks"]["lan"]["ipv4"] = "10.11.0.10"
    lab_update(lab=lab, labfile_tree=tree)


async def statuses(client: WebsocketCommunicator, count: int) -> list[tuple[str, int, str]]:
    got = [await client.receive_json_from(timeout=2) for _ in range(count)]
    return [(e["type"], e["lab"], e["label"]) for e in got]


async def test_the_owner_hears_the_status_of_her_lab_with_its_label(
    alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched
) -> None:
    client = await connected(alice)
    await database_sync_to_async(_deploy)(alice_lab, alice)
    assert await statuses(client, 2) == [
        ("deployment.status", alice_lab.pk, "Deploying"),
        ("deployment.status", alice_lab.pk, "Running"),
    ]
    await client.disconnect()


async def test_a_stranger_hears_nothing_of_another_users_lab(
    alice: User, charlie: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched
) -> None:
    owner, stranger = await connected(alice), await connected(charlie)
    await database_sync_to_async(_deploy)(alice_lab, alice)
    assert len(await statuses(owner, 2)) == 2
    assert await stranger.receive_nothing(timeout=QUIET)
    await owner.disconnect()
    await stranger.disconnect()


async def test_a_group_member_hears_the_shared_lab_but_not_the_unshared_one(
    alice: User,
    bob: User,
    alice_lab: Lab,
    shared_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
) -> None:
    member = await connected(bob)
    await database_sync_to_async(_on_a_subnet_of_its_own)(shared_lab)
    await database_sync_to_async(_deploy)(alice_lab, alice)
    await database_sync_to_async(_deploy)(shared_lab, alice)
    assert await statuses(member, 2) == [
        ("deployment.status", shared_lab.pk, "Deploying"),
        ("deployment.status", shared_lab.pk, "Running"),
    ]
    assert await member.receive_nothing(timeout=QUIET)
    await member.disconnect()


async def test_the_teacher_of_the_owners_class_and_an_admin_hear_the_lab(
    alice: User,
    charlie: User,
    root: User,
    alice_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
) -> None:
    await database_sync_to_async(classroom_create)(name="net-101", teacher=charlie, members=[alice])
    teacher, admin = await connected(charlie), await connected(root)
    await database_sync_to_async(_deploy)(alice_lab, alice)
    for client in (teacher, admin):
        assert [s for _, _, s in await statuses(client, 2)] == ["Deploying", "Running"]
        await client.disconnect()


async def test_a_lab_unshared_after_connecting_stops_reaching_the_group(
    alice: User, bob: User, shared_lab: Lab, online_host: Host, dispatched: Dispatched
) -> None:
    member = await connected(bob)
    await database_sync_to_async(lab_update)(lab=shared_lab, shared_with=[])
    await database_sync_to_async(_deploy)(shared_lab, alice)
    assert await member.receive_nothing(timeout=QUIET)
    await member.disconnect()


async def test_steps_and_metrics_stay_on_the_labs_own_stream(alice: User, alice_lab: Lab) -> None:
    client = await connected(alice)
    group = events.lab_group(alice_lab.pk)
    await client.send_json_to({"type": "deployment.status"})  # what a browser sends is ignored too
    layer = get_channel_layer()
    await layer.group_send(group, {"type": "metrics.sample", "lab": alice_lab.pk, "samples": []})
    await layer.group_send(group, {"type": "deployment.step", "lab": alice_lab.pk})
    assert await client.receive_nothing(timeout=QUIET)
    await client.disconnect()


async def test_every_user_hears_a_host_go_offline_once_with_its_load(
    alice: User, charlie: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched
) -> None:
    await database_sync_to_async(_deploy)(alice_lab, alice)  # the host event reaches the lab too
    owner, stranger = await connected(alice), await connected(charlie)

    def silent() -> None:
        Host.objects.filter(pk=online_host.pk).update(
            last_seen=timezone.now() - timezone.timedelta(hours=1)
        )
        hosts_mark_silent_offline()

    await database_sync_to_async(silent)()
    for client in (owner, stranger):
        event = await client.receive_json_from(timeout=2)
        assert (event["type"], event["host"], event["status"]) == (
            "host.status",
            "local",
            "offline",
        )
        assert event["deployments"] == 1
        assert await client.receive_nothing(timeout=QUIET)  # not again through the lab's group
        await client.disconnect()


async def test_reservation_warnings_reach_only_their_owner(alice: User, charlie: User) -> None:
    owner, stranger = await connected(alice), await connected(charlie)
    layer = get_channel_layer()
    warning = {"type": "reservation.warning", "reservation": 7, "host": "local", "final": False}
    await layer.group_send(reservation_group(alice.pk), warning)
    assert (await owner.receive_json_from(timeout=2))["reservation"] == 7
    assert await stranger.receive_nothing(timeout=QUIET)
    await owner.disconnect()
    await stranger.disconnect()


async def test_logging_out_ends_the_stream(alice: User) -> None:
    client = await connected(alice)
    layer = get_channel_layer()
    await layer.group_send(events.user_group(alice.pk), {"type": "session.ended", "user": alice.pk})
    assert (await client.receive_output(timeout=2))["type"] == "websocket.close"


async def test_anonymous_visitors_are_refused() -> None:
    client = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/me/")
    client.scope["user"] = AnonymousUser()
    assert await client.connect() == (False, 4403)
