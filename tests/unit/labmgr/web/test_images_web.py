"""The Images page as the server draws it: every host's store for every signed-in user,
the admin's actions only for admins, and the stream that tells the page to read again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from labmgr.hosts.models import Host
from labmgr.images.services import host_images_report_record
from labmgr.routing import websocket_urlpatterns

DIGEST = "sha256:" + "d" * 64
IMAGE = {"digest": DIGEST, "refs": ["docker.io/library/alpine:3.20"], "size": 5, "last_used": 1.0}


def page(client: Client, user: User) -> str:
    client.force_login(user)
    response = client.get("/images/")
    assert response.status_code == 200
    return response.content.decode()


def data(html: str) -> list[dict[str, Any]]:
    opening = '<script id="images-data" type="application/json">'
    start = html.index(opening) + len(opening)
    rows: list[dict[str, Any]] = json.loads(html[start : html.index("</script>", start)])
    return rows


def test_every_user_sees_each_hosts_images_and_only_admins_get_the_actions(
    client: Client, alice: User, root: User, online_host: Host
) -> None:
    host_images_report_record(
        slug="local",
        action="pull",
        ok=True,
        error="",
        message="pulled",
        images=[{**IMAGE, "tokens": []}],
    )
    html = page(client, alice)
    assert [i["refs"] for i in data(html)[0]["images"]] == [["docker.io/library/alpine:3.20"]]
    assert "Prune now" not in html and 'class="image-pull"' not in html
    html = page(client, root)
    assert "Prune now" in html and 'class="image-pull"' in html
    assert data(html)[0]["last_action"] == "pull: pulled"


def test_the_anonymous_are_sent_to_log_in(client: Client) -> None:
    assert client.get("/images/").status_code == 302


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_the_users_stream_says_when_a_hosts_images_changed(
    alice: User, online_host: Host
) -> None:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/me/")
    communicator.scope["user"] = alice
    connected, _ = await communicator.connect()
    assert connected
    await database_sync_to_async(host_images_report_record)(
        slug="local", action="prune", ok=True, error="", message="nothing to remove", images=[]
    )
    event = await communicator.receive_json_from(timeout=5)
    assert event == {
        "type": "host.images",
        "host": "local",
        "ok": True,
        "status": "prune: nothing to remove",
        "count": 0,
    }
    await communicator.disconnect()
