"""System tier: a real Redis, the real control worker and beat, a real host agent (as
root, with its own data dir and host name), a real uvicorn; tests talk to them only over
HTTP and websockets, as a browser or an API client would.

Everything runs from a private directory: its own SQLite database, Redis on a free port,
the agent's journal. Deployment ids start high (from this process's pid) so kernel names
never meet those of another run on the machine.

The `browser_for` fixture adds headless Chromium (Playwright) logged in through the login
page, for the tests that click through the pages of this real stack; `shot` saves what it
shows under test-artifacts/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from labplan.messages import CONTROL_QUEUE, SCENARIO_QUEUE
from tests.imagekit import Registry

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("LABMGR_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/system" in str(item.fspath):
            item.add_marker(pytest.mark.system)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="the system tier runs a host agent: root"))
            elif shutil.which("redis-server") is None:
                item.add_marker(pytest.mark.skip(reason="the system tier needs redis-server"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float = 30,
    every: float = 0.2,
    errors: tuple[type[Exception], ...] = (),
) -> Any:
    """Polls `check` until it returns something true (an exception of `errors`, or of a
    connection, counts as not yet); fails naming `what`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if value := check():
                return value
        except (requests.RequestException, OSError, *errors) as exc:
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")
        time.sleep(every)


@dataclass
class Process:
    """A child process in its own process group, its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        self.popen = None

    def kill(self) -> None:
        if self.popen is not None:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
            self.popen = None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Persona:
    username: str
    token: str
    session: str

    def api(self, base: str) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Token {self.token}"
        http.base_url = base  # type: ignore[attr-defined]
        return http


@dataclass
class Stack:
    base: str
    ws_base: str
    host: str
    redis_port: int
    redis_password: str
    env: dict[str, str]
    redis: Process
    agent: Process
    others: list[Process]
    personas: dict[str, Persona] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)  # every deployment the tests made
    registry_port: int = 0  # where the `registry` fixture serves (the agent trusts it)
    work: Path = Path("/nonexistent")

    def processes(self) -> list[Process]:
        return [self.redis, self.agent, *self.others]

    def get(self, who: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.base + path, headers=self.auth(who), timeout=60, **kwargs)

    def post(self, who: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.base + path, headers=self.auth(who), timeout=60, **kwargs)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Token {self.personas[who].token}"}

    def ws_headers(self, who: str) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.personas[who].session}", "Origin": self.base}

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes())


SETUP_SCRIPT = """
import json, sys
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from rest_framework.authtoken.models import Token

first_deployment = int(sys.argv[1])
with connection.cursor() as cursor:
    # Migrations that rebuild the table leave its row in sqlite_sequence: a second row
    # would be ignored (ids would start at 1), so update it when it is there.
    cursor.execute(
        "UPDATE sqlite_sequence SET seq = %s WHERE name = 'deployments_deployment'",
        [first_deployment - 1],
    )
    if cursor.rowcount == 0:
        cursor.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('deployments_deployment', %s)",
            [first_deployment - 1],
        )
out = {}
for name in ("alice", "charlie"):
    user = User.objects.create_user(name, f"{name}@example.org", f"{name}-password-1")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    out[name] = {"token": Token.objects.create(user=user).key, "session": session.session_key}
print("PERSONAS " + json.dumps(out))
"""


def book_the_host(stack: Stack, who: str) -> None:
    """Deployments run inside their owner's reservation: book the whole host for the run,
    through the API as a user would."""
    hosts = stack.get(who, "/api/hosts/").json()["results"]
    host = next(h for h in hosts if h["slug"] == stack.host)
    start = datetime.now(UTC)
    response = stack.post(
        who,
        "/api/reservations/",
        json={
            "host": host["id"],
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "whole_host": True,
        },
    )
    assert response.status_code == 201, response.text


def _redis(port: int, directory: Path, password: str) -> Process:
    """Redis as `make run` starts it: on loopback, its password in a 0600 file (never on
    a command line, which every user of the host can read)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = directory / "redis.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(f"bind 127.0.0.1\nport {port}\ndir {directory}\nrequirepass {password}\n")
        stream.write('save "3600 1"\nappendonly no\ndaemonize no\nprotected-mode yes\n')
    return Process(
        "redis", ["redis-server", str(config)], dict(os.environ), directory / "redis.log"
    )


def register_host(env: dict[str, str], slug: str, agent_data_dir: Path) -> None:
    """Register the host as an admin would and install its key where its agent reads it."""
    subprocess.run(
        [
            PYTHON,
            str(ROOT / "manage.py"),
            "host_register",
            slug,
            "--key-file",
            str(agent_data_dir / "host.key"),
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Under /var/tmp, not /tmp: a node has a /tmp of its own, but sees the host's /var/tmp,
    # so the tenant tests prove that the modes of these directories are what protect them.
    work = Path(tempfile.mkdtemp(prefix="labmgr-systest-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    redis_port, web_port, registry_port = free_port(), free_port(), free_port()
    redis_password = secrets.token_urlsafe(24)
    host = f"systest-{os.getpid()}"
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "labmgr.settings",
        "LABMGR_DATA_DIR": str(work / "data"),
        "REDIS_URL": f"redis://:{redis_password}@127.0.0.1:{redis_port}/0",
        "LABMGR_AGENT_HOST": host,
        "LABMGR_AGENT_DATA_DIR": str(work / "agent"),
        "LABMGR_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LABMGR_HOST_CHECK_EVERY": "2",
        "LABMGR_HOST_OFFLINE_AFTER": "20",
        "LABMGR_DEPLOY_TIMEOUT": "60",
        # Short reservations in the browser tests: the beat looks at them every 2 s and
        # warns 45 s before their end.
        "LABMGR_RESERVATION_TICK_EVERY": "2",
        "LABMGR_RESERVATION_WARN_BEFORE": "45",
        "PYTHONDONTWRITEBYTECODE": "1",
        # The tests' registry (the `registry` fixture) serves plain HTTP on loopback, and
        # stands in for `registry.systest` as its mirror.
        "LABMGR_INSECURE_REGISTRIES": f"127.0.0.1:{registry_port}",
        "LABMGR_REGISTRY_MIRRORS": f"registry.systest=127.0.0.1:{registry_port}",
        # The Prometheus export, for the `prometheus` fixture's scraper.
        "LABMGR_METRICS_TOKEN": secrets.token_urlsafe(24),
    }
    env.pop("DATABASE_URL", None)
    redis = _redis(redis_port, work / "redis", redis_password)
    redis.start()
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], env=env, cwd=ROOT, check=True)
    register_host(env, host, work / "agent")
    first = 1_000_000 + (os.getpid() % 100_000) * 100
    done = subprocess.run(
        [*manage, "shell", "-c", SETUP_SCRIPT.replace("int(sys.argv[1])", str(first))],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PERSONAS "))
    personas = json.loads(line.removeprefix("PERSONAS "))
    logs = work / "logs"
    logs.mkdir()
    celery = [str(BIN / "celery"), "-A", "labmgr.celery"]
    others = [
        Process(
            "control",
            [
                *celery,
                "worker",
                "-Q",
                CONTROL_QUEUE,
                "-n",
                f"control-{os.getpid()}@%h",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
            ],
            env,
            logs / "control.log",
        ),
        Process(
            "scenarios",
            [
                *celery,
                "worker",
                "-Q",
                SCENARIO_QUEUE,
                "-n",
                f"scenarios-{os.getpid()}@%h",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
            ],
            env,
            logs / "scenarios.log",
        ),
        Process("beat", [*celery, "beat", "--loglevel", "INFO"], env, logs / "beat.log"),
        Process(
            "web",
            [
                str(BIN / "uvicorn"),
                "labmgr.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
            ],
            env,
            logs / "web.log",
        ),
    ]
    agent = Process("agent", [PYTHON, "-m", "workers", "agent"], env, logs / "agent.log")
    result = Stack(
        base=f"http://127.0.0.1:{web_port}",
        ws_base=f"ws://127.0.0.1:{web_port}",
        host=host,
        redis_port=redis_port,
        redis_password=redis_password,
        env=env,
        redis=redis,
        agent=agent,
        others=others,
        personas={k: Persona(k, v["token"], v["session"]) for k, v in personas.items()},
        registry_port=registry_port,
        work=work,
    )
    for process in [*others, agent]:
        process.start()
    try:
        wait_for(
            "the agent's host to come online",
            lambda: any(
                h["slug"] == host and h["status"] == "online"
                for h in result.get("alice", "/api/hosts/").json()["results"]
            ),
            timeout=60,
        )
        book_the_host(result, "alice")
        yield result
    except BaseException:
        print(result.logs())
        raise
    finally:
        for process in [agent, *others, redis]:
            process.stop()
        # What the agent built lives on without it: a failed test must not leave it. Only
        # this run's own deployments, by token (never a sweep: other runs share the kernel).
        for token in result.tokens:
            subprocess.run(
                [PYTHON, "-m", "workers", "destroy", token],
                env=env,
                cwd=ROOT,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(stack: Stack) -> Iterator[Registry]:
    """A real registry (Debian's docker-registry) where the stack's agent expects it,
    for the session."""
    with Registry(stack.work / "registry", port=stack.registry_port) as served:
        yield served


def password_of(username: str) -> str:
    """The personas' passwords, as SETUP_SCRIPT sets them."""
    return f"{username}-password-1"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_for(stack: Stack, chromium: Any) -> Iterator[Callable[[str], Any]]:
    """`browser_for("alice")`: a fresh browser window logged in as that persona through
    the login page, on the dashboard. A script error in any page fails the test."""
    contexts: list[Any] = []
    problems: list[str] = []

    def open_(who: str) -> Any:
        # UTC in the browser too, so the pages' times read like the server's.
        context = chromium.new_context(base_url=stack.base, viewport=VIEWPORT, timezone_id="UTC")
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"{who}: {error}"))
        page.goto("/login/")
        page.get_by_label("User name").fill(who)
        page.get_by_label("Password").fill(password_of(who))
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(stack.base + "/")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, f"JavaScript errors: {problems}"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """`shot(page, "what")` saves test-artifacts/<test>-<what>.png: the 1280x800 window,
    as a user sees it."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(page: Any, what: str) -> Path:
        path = ARTIFACTS / f"system-{request.node.name.removeprefix('test_')}-{what}.png"
        page.screenshot(path=str(path))
        return path

    return save
