"""The dashboard follows the user's stream (`ws/me/`) in a real browser: a deployment's
status and a host going offline change their rows in place, without a reload or a poll,
while another user's browser hears nothing of that lab.

Events cross processes here: they are published by `manage.py shell` (the service layer,
as the control worker would) and must reach the web server. The tier's shared server
keeps its channel layer in memory, so this module starts its own server, over a private
Redis, with its own SQLite file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, REPO, _free_port, _server_env, serve

Shot = Callable[[Page, str], Path]
Shell = Callable[[str], None]
REDIS = shutil.which("redis-server")
HOST = "live-host"

pytestmark = pytest.mark.skipif(REDIS is None, reason="no redis-server (apt-get install redis)")


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[str, Shell]]:
    """(URL, shell): a web server whose channel layer is a private Redis, and a way to run
    Python against its database that publishes to the same Redis."""
    data = Path(tempfile.mkdtemp(prefix="labmgr-live-"))
    redis_port = _free_port()
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(data)]
    redis = subprocess.Popen(
        [str(REDIS), "--port", str(redis_port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **_server_env(data),
        "LABMGR_CHANNEL_LAYER": "redis",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    manage = [sys.executable, str(REPO / "manage.py")]

    def shell(code: str) -> None:
        subprocess.run([*manage, "shell", "-v", "0", "-c", code], env=env, check=True, cwd=REPO)

    try:
        with serve(data, env, ("ann", "sam")) as url:
            yield url, shell
    finally:
        redis.terminate()
        try:
            redis.wait(timeout=10)
        except subprocess.TimeoutExpired:
            redis.kill()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def open_page(browser: Browser, stack: tuple[str, Shell]) -> Iterator[Callable[[str], Page]]:
    """`open_page(user)`: a logged-in page of its own browser context on the dashboard."""
    url, _ = stack
    contexts = []
    problems: list[str] = []

    def as_user(name: str) -> Page:
        context = browser.new_context(base_url=url, viewport={"width": 1366, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto("/login/")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")
        return page

    yield as_user
    for context in contexts:
        context.close()
    assert not problems, f"JavaScript errors: {problems}"


def _frames(page: Page) -> list[dict[str, object]]:
    """Every event the page's dashboard stream receives, as it arrives."""
    received: list[dict[str, object]] = []

    def follow(socket: object) -> None:
        if socket.url.endswith("/ws/me/"):  # type: ignore[attr-defined]
            socket.on("framereceived", lambda payload: received.append(json.loads(payload)))  # type: ignore[attr-defined]

    page.on("websocket", follow)
    return received


def test_the_dashboard_changes_rows_in_place_as_the_stream_tells(
    stack: tuple[str, Shell], open_page: Callable[[str], Page], shot: Shot
) -> None:
    _, shell = stack
    shell(
        "from django.contrib.auth.models import User; from django.utils import timezone; "
        "from labmgr.hosts.models import Host; from labmgr.labs.services import lab_create; "
        "from labmgr.deployments.services import deployment_create; "
        "from tests.unit.labmgr.conftest import small_labfile; "
        f"host = Host.objects.create(name={HOST!r}, slug={HOST!r}, status='online', "
        "last_seen=timezone.now()); "
        "lab = lab_create(owner=User.objects.get(username='ann'), "
        "labfile_tree=small_labfile('live-demo')); "
        "deployment_create(lab=lab, owner=lab.owner, host=host)"
    )
    stranger = open_page("sam")
    heard_by_stranger = _frames(stranger)
    stranger.reload()
    owner = open_page("ann")
    for page in (owner, stranger):
        expect(page.locator("#dashboard-live")).to_have_attribute("data-state", "live")
    row = owner.locator("#labs tr", has_text="live-demo")
    expect(row.locator(".lab-status .status")).to_have_text("Pending")
    owner.evaluate("window.notReloaded = true")
    polls: list[str] = []
    owner.on("request", lambda r: polls.append(r.url) if "status.json" in r.url else None)

    shell(
        "from labmgr.deployments.models import Deployment; "
        "from labmgr.deployments.services import deployment_transition; "
        "d = Deployment.objects.get(lab__name='live-demo'); "
        "deployment_transition(deployment=d, to='deploying'); "
        "deployment_transition(deployment=d, to='running')"
    )
    expect(row.locator(".lab-status .status")).to_have_text("Running")
    expect(owner.locator("ol.deployments li").first.locator(".status")).to_have_text("Running")
    shot(owner, "running")

    shell(
        "from datetime import timedelta; from django.utils import timezone; "
        "from labmgr.hosts.models import Host; "
        "from labmgr.hosts.services import hosts_mark_silent_offline; "
        f"Host.objects.filter(slug={HOST!r})"
        ".update(last_seen=timezone.now() - timedelta(hours=1)); "
        "hosts_mark_silent_offline()"
    )
    host = owner.locator(f'li[data-host="{HOST}"]')
    expect(host.locator(".status")).to_have_text("Offline")
    expect(host.locator(".host-load")).to_have_text("1 active deployment")
    expect(stranger.locator(f'li[data-host="{HOST}"] .status')).to_have_text("Offline")
    assert owner.evaluate("window.notReloaded") is True
    assert polls == []  # the stream told it all: the poll only stands in while it is down
    shot(owner, "host-offline")

    time.sleep(0.5)  # anything still on its way to the stranger arrives
    assert [e["type"] for e in heard_by_stranger] == ["host.status"]
    expect(stranger.locator("#labs")).to_have_count(0)  # no lab of hers at all
