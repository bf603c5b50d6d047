"""The Images page in a real browser: an admin sees the image a host's agent reported,
prunes the host's unused images, and the list empties in place when the agent's report
comes, without a reload; a user who is no admin sees the list but no action.

No agent runs in this tier: the prune must reach the host's queue on the broker (a
private Redis, checked here), and the agent's answer is recorded through the service the
control task `labmgr.control.images` calls (`manage.py shell`), publishing on the same
Redis as the control worker would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, REPO, _free_port, _server_env, serve

Shot = Callable[[Page, str], Path]
Shell = Callable[[str], str]
REDIS = shutil.which("redis-server")
HOST = "images-host"
ALPINE = "docker.io/library/alpine:3.20"
DIGEST = "sha256:" + "c" * 64

pytestmark = pytest.mark.skipif(REDIS is None, reason="no redis-server (apt-get install redis)")


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[str, Shell, int]]:
    """(URL, shell, Redis port): a web server whose channel layer and Celery broker are a
    private Redis, and a way to run Python against its database on the same Redis."""
    data = Path(tempfile.mkdtemp(prefix="labmgr-images-"))
    port = _free_port()
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(data)]
    redis = subprocess.Popen(
        [str(REDIS), "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **_server_env(data),
        "LABMGR_CHANNEL_LAYER": "redis",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }
    manage = [sys.executable, str(REPO / "manage.py")]

    def shell(code: str) -> str:
        done = subprocess.run(
            [*manage, "shell", "-v", "0", "-c", code],
            env=env,
            check=True,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        return done.stdout

    try:
        with serve(data, env, ("ada", "tom")) as url:
            yield url, shell, port
    finally:
        redis.terminate()
        try:
            redis.wait(timeout=10)
        except subprocess.TimeoutExpired:
            redis.kill()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def open_page(browser: Browser, stack: tuple[str, Shell, int]) -> Iterator[Callable[[str], Page]]:
    """`open_page(user)`: a logged-in page of its own browser context on the Images page."""
    url, _, _ = stack
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
        page.get_by_role("link", name="Images").click()
        page.wait_for_url("**/images/")
        return page

    yield as_user
    for context in contexts:
        context.close()
    assert not problems, f"JavaScript errors: {problems}"


def _queued(port: int, queue: str) -> list[dict[str, object]]:
    """The messages waiting on a Celery queue of the private Redis."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    finally:
        client.close()


def test_an_admin_sees_a_reported_image_and_prunes_it(
    stack: tuple[str, Shell, int], open_page: Callable[[str], Page], shot: Shot
) -> None:
    _, shell, port = stack
    image = {"digest": DIGEST, "refs": [ALPINE], "size": 7_340_032, "last_used": 1.7e9}
    shell(
        "from django.contrib.auth.models import User; from django.utils import timezone; "
        "from labmgr.hosts import trust; from labmgr.hosts.models import Host; "
        "from labmgr.images.services import host_images_report_record; "
        "User.objects.filter(username='ada').update(is_staff=True, is_superuser=True); "
        f"trust.host_register(slug={HOST!r}); "
        f"Host.objects.filter(slug={HOST!r}).update(status='online', last_seen=timezone.now()); "
        f"host_images_report_record(slug={HOST!r}, action='pull', ok=True, error='', "
        f"message='pulled {ALPINE} ({DIGEST})', images=[{{**{image!r}, 'tokens': []}}])"
    )
    tom = open_page("tom")
    section = tom.locator("section.host-images", has_text=HOST)
    expect(section.locator("tbody tr")).to_have_count(1)
    expect(section.locator("tbody tr th")).to_have_text(ALPINE)
    expect(section.get_by_role("button", name="Prune now")).to_have_count(0)

    admin = open_page("ada")
    section = admin.locator("section.host-images", has_text=HOST)
    row = section.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("th")).to_have_text(ALPINE)
    expect(row).to_contain_text("7.0 MiB")
    expect(row).to_contain_text("unused")
    expect(section.locator(".last-action")).to_contain_text(f"pull: pulled {ALPINE}")
    expect(admin.locator("#images-live")).to_have_attribute("data-state", "live")
    shot(admin, "before-prune")
    admin.evaluate("window.notReloaded = true")

    section.get_by_text("Prune unused images").click()
    section.get_by_role("button", name="Prune now").click()
    expect(section.locator(".last-action")).to_have_text(
        "Last action: prune: every unused image asked for"
    )
    queued = _queued(port, f"host.{HOST}")
    assert [m["headers"]["task"] for m in queued] == ["labmgr.agent.image_prune"]  # type: ignore[index]

    # The host's agent answers: its store is empty now.
    shell(
        "from labmgr.images.services import host_images_report_record; "
        f"host_images_report_record(slug={HOST!r}, action='prune', ok=True, error='', "
        f"message='removed {ALPINE}', images=[])"
    )
    expect(section.locator("tbody")).to_have_text("No images on this host.")
    expect(section.locator(".last-action")).to_have_text(f"Last action: prune: removed {ALPINE}")
    assert admin.evaluate("window.notReloaded") is True
    shot(admin, "after-prune")
    expect(tom.locator("section.host-images", has_text=HOST).locator("tbody")).to_have_text(
        "No images on this host."
    )


def test_a_refused_pull_says_why_next_to_the_form(
    stack: tuple[str, Shell, int], open_page: Callable[[str], Page]
) -> None:
    _, shell, _ = stack
    shell(
        "from django.contrib.auth.models import User; from django.utils import timezone; "
        "from labmgr.hosts import trust; from labmgr.hosts.models import Host; "
        "User.objects.filter(username='ada').update(is_staff=True, is_superuser=True); "
        f"trust.host_register(slug={HOST!r}); "
        f"Host.objects.filter(slug={HOST!r}).update(status='online', last_seen=timezone.now())"
    )
    admin = open_page("ada")
    section = admin.locator("section.host-images", has_text=HOST)
    section.get_by_label("Reference").fill("Not A/Reference")
    section.get_by_role("button", name="Pull").click()
    expect(section.get_by_role("alert")).to_contain_text("ref: ")
    expect(section.get_by_role("alert")).to_contain_text("is not a valid image reference")
