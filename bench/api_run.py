"""The same lab deployed through the whole product: REST request -> control plane ->
Celery over Redis -> host agent -> reports -> RUNNING in the database.

Starts its own stack in a temporary directory: a private redis-server, a SQLite database
with an admin and a token, the Celery control worker, a host agent and uvicorn; stops
it all at the end. The timed span of a deploy is from the POST to the moment the lab's
websocket says the deployment is running; of a destroy, from the POST to "destroyed".
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import ClientConnection, connect

from labplan.messages import CONTROL_QUEUE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POLL = 0.01  # seconds between two looks while the stack starts
FIRST_DEPLOYMENT = 991_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(POLL)
    raise SystemExit(f"bench: timed out waiting for {what}")


class ApiStack:
    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.host = f"bench-{os.getpid()}"
        redis_port, web_port = _free_port(), _free_port()
        self.base = f"http://127.0.0.1:{web_port}"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "labmgr.settings",
            "LABMGR_DATA_DIR": str(work / "data"),
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "LABMGR_AGENT_HOST": self.host,
            "LABMGR_AGENT_DATA_DIR": str(work / "agent"),
            "LABMGR_ALLOWED_HOSTS": "127.0.0.1",
            "LABMGR_LOG_LEVEL": os.environ.get("LABMGR_LOG_LEVEL", "WARNING"),
        }
        self.env.pop("DATABASE_URL", None)
        self.processes: list[subprocess.Popen[bytes]] = []
        self._start(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                     "--dir", str(work), "--save", "", "--appendonly", "no"])  # fmt: skip
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], env=self.env, check=True)
        subprocess.run([*manage, "host_register", self.host, "--key-file",
                        str(work / "agent" / "host.key")], env=self.env, check=True,
                       capture_output=True)  # fmt: skip
        # Deployment ids far from those of a labmgr running on this machine, so that
        # kernel names cannot meet.
        script = (
            "from django.db import connection\n"
            'connection.cursor().execute("INSERT INTO sqlite_sequence (name, seq) VALUES '
            f"('deployments_deployment', {FIRST_DEPLOYMENT - 1})\")\n"
            "from django.contrib.auth.models import User\n"
            "from rest_framework.authtoken.models import Token\n"
            "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY\n"
            "from django.contrib.sessions.backends.db import SessionStore\n"
            "u = User.objects.create_superuser('bench', 'bench@example.org', 'unused-Pa55')\n"
            "s = SessionStore()\n"
            "s[SESSION_KEY] = str(u.pk)\n"
            "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
            "s[HASH_SESSION_KEY] = u.get_session_auth_hash()\n"
            "s.create()\n"
            "print(Token.objects.create(user=u).key, s.session_key)\n"
        )
        out = subprocess.run([*manage, "shell", "-c", script], env=self.env, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        token, self.session_key = out.split()[-2:]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        celery = [str(BIN / "celery"), "-A", "labmgr.celery"]
        self._start([*celery, "worker", "-Q", CONTROL_QUEUE, "-n", f"bench-{os.getpid()}@%h",
                     "--concurrency", "1", "--loglevel", "WARNING"])  # fmt: skip
        self._start([sys.executable, "-m", "workers", "agent"])
        # As `make run` starts it: one web process per core, at most 4.
        workers = str(min(os.cpu_count() or 1, 4))
        self._start([str(BIN / "uvicorn"), "labmgr.asgi:application", "--host", "127.0.0.1",
                     "--port", str(web_port), "--workers", workers,
                     "--log-level", "warning"])  # fmt: skip
        _wait("the agent's host to come online", self._host_online, timeout=60)

    def _start(self, argv: list[str]) -> None:
        log = open(self.work / f"{Path(argv[0]).name}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        self.processes.append(
            subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        )

    def _host_online(self) -> bool:
        hosts = self.session.get(f"{self.base}/api/hosts/", timeout=5).json()["results"]
        return any(h["slug"] == self.host and h["status"] == "online" for h in hosts)

    def create_lab(self, labfile: dict[str, Any]) -> int:
        response = self.session.post(
            f"{self.base}/api/labs/", json={"labfile": labfile}, timeout=60
        )
        response.raise_for_status()
        return int(response.json()["id"])

    def _events(self, lab: int) -> ClientConnection:
        """The lab's event stream, as a browser follows it: the status arrives when the
        control plane has stored it, with no polling load on the machine."""
        return connect(
            f"{self.base.replace('http', 'ws', 1)}/ws/labs/{lab}/",
            additional_headers={"Cookie": f"sessionid={self.session_key}", "Origin": self.base},
            open_timeout=10,
        )

    def _until(self, events: ClientConnection, deployment: int, wanted: str) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            event = json.loads(events.recv(timeout=deadline - time.monotonic()))
            if event.get("type") != "deployment.status" or event["deployment"] != deployment:
                continue
            if event["status"] == "failed":
                raise SystemExit(f"bench: deployment {deployment} failed (logs in {self.work})")
            if event["status"] == wanted:
                return
        raise SystemExit(f"bench: timed out waiting for deployment {deployment} to be {wanted}")

    def deploy(self, lab: int) -> int:
        with self._events(lab) as events:
            response = self.session.post(f"{self.base}/api/labs/{lab}/deploy", timeout=60)
            response.raise_for_status()
            deployment = int(response.json()["id"])
            self._until(events, deployment, "running")
        return deployment

    def destroy(self, lab: int, deployment: int) -> None:
        with self._events(lab) as events:
            url = f"{self.base}/api/labs/{lab}/destroy"
            self.session.post(url, timeout=60).raise_for_status()
            self._until(events, deployment, "destroyed")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
