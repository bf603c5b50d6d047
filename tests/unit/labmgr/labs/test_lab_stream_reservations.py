"""The lab page's stream also carries the watching user's own reservation events (the
warning before the end, the end), and nobody else's."""

from __future__ import annotations

from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from labmgr.labs.models import Lab
from labmgr.reservations.notify import reservation_group
from labmgr.routing import websocket_urlpatterns

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


WARNING: dict[str, Any] = {
    "type": "reservation.warning",
    "reservation": 7,
    "host": "lab-server",
    "end": "2030-01-01T10:00:00+00:00",
    "seconds_left": 45,
    "final": True,
}


async def watch(lab: Lab, user: User) -> WebsocketCommunicator:
    client = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/labs/{lab.pk}/")
    client.scope["user"] = user
    connected, _ = await client.connect()
    assert connected
    return client


async def test_my_reservation_warning_reaches_my_lab_page(alice: User, shared_lab: Lab) -> None:
    client = await watch(shared_lab, alice)
    await get_channel_layer().group_send(reservation_group(alice.pk), WARNING)
    event = await client.receive_json_from(timeout=2)
    assert (event["type"], event["host"], event["seconds_left"]) == (
        "reservation.warning",
        "lab-server",
        45,
    )
    await client.disconnect()


async def test_a_member_watching_a_shared_lab_does_not_get_the_owners_warnings(
    alice: User, bob: User, shared_lab: Lab
) -> None:
    client = await watch(shared_lab, bob)
    await get_channel_layer().group_send(reservation_group(alice.pk), WARNING)
    assert await client.receive_nothing(timeout=0.5)
    # The same socket does receive bob's own.
    await get_channel_layer().group_send(reservation_group(bob.pk), WARNING)
    assert (await client.receive_json_from(timeout=2))["type"] == "reservation.warning"
    await client.disconnect()
