"""The browser tier: a real uvicorn serving labmgr on a free port against a fresh SQLite
database, and headless Debian Chromium driven by Playwright.

No Redis is needed for these pages: the channel layer is in memory and no host agent
runs, so a deploy is refused with its reason. Each test saves screenshots under
`test-artifacts/`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LABMGR_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
USERS = ("alice", "bob", "carol", "dave", "erin")
PASSWORD = "correct-horse-battery"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited at start:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server_data() -> Iterator[Path]:
    """The live server's data directory: its own SQLite file."""
    data = Path(tempfile.mkdtemp(prefix="labmgr-browser-"))
    yield data
    shutil.rmtree(data, ignore_errors=True)


def _server_env(data: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "LABMGR_DATA_DIR": str(data),
        "LABMGR_CHANNEL_LAYER": "memory",
        "DJANGO_SETTINGS_MODULE": "labmgr.settings",
    }
    env.pop("DATABASE_URL", None)  # always a fresh SQLite file of our own
    return env


@pytest.fixture(scope="session")
def manage_shell(server_data: Path) -> Callable[[str], None]:
    """Run Python in `manage.py shell` against the live server's database."""

    def run(code: str) -> None:
        argv = [sys.executable, str(REPO / "manage.py"), "shell", "-v", "0", "-c", code]
        subprocess.run(argv, env=_server_env(server_data), check=True, cwd=REPO)

    return run


@contextlib.contextmanager
def serve(data: Path, env: dict[str, str], users: Iterable[str]) -> Iterator[str]:
    """A migrated database in `data` with `users` (password PASSWORD) behind a real uvicorn
    on a free port; its URL, until the block ends."""
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], env=env, check=True, cwd=REPO)
    create = "; ".join(
        f"User.objects.create_user({name!r}, password={PASSWORD!r})" for name in users
    )
    subprocess.run(
        [*manage, "shell", "-c", f"from django.contrib.auth.models import User; {create}"],
        env=env,
        check=True,
        cwd=REPO,
    )
    port = _free_port()
    log = data / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "labmgr.asgi:application", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/login/", server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def live_server_url(server_data: Path) -> Iterator[str]:
    with serve(server_data, _server_env(server_data), USERS) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live_server_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    # A script error in any page is a failure, even when the test's checks passed.
    assert not problems, f"JavaScript errors: {problems}"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """`shot(page, "what")` saves test-artifacts/<test>-<what>.png (the whole page)."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(page: Page, what: str) -> Path:
        path = ARTIFACTS / f"{request.node.name.removeprefix('test_')}-{what}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def login(page: Page) -> Callable[[str], Page]:
    def as_user(name: str) -> Page:
        page.goto("/login/")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")
        return page

    return as_user
