"""The agent as it runs in production: `python -m workers agent` against a private
redis-server, driven by Celery `send_task` like the control plane drives it (signed with
the host's key), its reports read off the `control` queue and checked against that key.
Apply, exec, metrics, destroy; kill -9 mid-apply and restart; Redis restarting under a
running lab; a message forged on the broker; an agent without a key."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from labplan import envelope, naming
from labplan.messages import AGENT_TASK_PREFIX, CONTROL_QUEUE, HOST_QUEUE_PREFIX, host_queue
from workers.keys import write_key

from .conftest import compile_dict, leftovers, new_deployment

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))  # the host's key, as host_register made it


@dataclass
class RedisServer:
    """A redis-server of the test's own on a unix socket in a private directory."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        argv = ["redis-server", "--port", "0", "--unixsocket", str(self.socket)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@dataclass
class Control:
    """The control plane's side, as far as the agent can tell: sends tasks to the host's
    queue, signed with the host's key, and reads what the agent sent to `control`,
    opening each report with that key (a report it did not sign fails the test)."""

    server: RedisServer
    queue: str
    key: bytes = KEY
    app: Celery = field(init=False)
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        url = f"redis+socket://{self.server.socket}"
        self.app = Celery("control-test", broker=url, backend=url, set_as_current=False)
        self.app.conf.update(
            task_serializer="json", accept_content=["json"], result_serializer="json"
        )

    @property
    def host(self) -> str:
        return self.queue.removeprefix(HOST_QUEUE_PREFIX)

    def send(self, name: str, *, key: bytes | None = None, **kwargs: Any) -> Answer:
        task, task_id = AGENT_TASK_PREFIX + name, uuid.uuid4().hex
        signed = envelope.seal(
            key or self.key,
            task=task,
            host=self.host,
            id=task_id,
            issued=time.time(),
            kwargs=kwargs,
        )
        result = self.app.send_task(
            task, kwargs={"signed": signed}, task_id=task_id, queue=self.queue
        )
        return Answer(self, task, result)

    def open(self, task: str, sealed: Any, task_id: str | None = None) -> dict[str, Any]:
        return envelope.open_(
            sealed, [self.key], task=task, host=self.host, now=time.time(), max_age=120, id=task_id
        ).kwargs

    def wait_for(self, task: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
        """The next report of `task` (with the fields in `match`), reading the queue."""
        deadline = time.monotonic() + timeout
        client = self.server.client()
        while time.monotonic() < deadline:
            try:
                item = client.blpop([CONTROL_QUEUE], timeout=1)
            except redis.RedisError:
                time.sleep(0.2)
                continue
            if item is None:
                continue
            message = json.loads(item[1])
            sealed = json.loads(base64.b64decode(message["body"]))[1]["signed"]
            name = message["headers"]["task"]
            kwargs = self.open(name, sealed, message["headers"]["id"])
            self.seen.append((name, kwargs))
            if name == task and all(kwargs.get(k) == v for k, v in match.items()):
                return dict(kwargs)
        raise AssertionError(f"no {task} {match} within {timeout} s")


@dataclass
class Answer:
    """A task sent to the agent; `get` is its answer, opened with the host's key."""

    control: Control
    task: str
    result: Any

    def get(self, timeout: float) -> Any:
        sealed = self.result.get(timeout=timeout)
        return self.control.open(envelope.result_task(self.task), sealed, self.result.id)["value"]


@dataclass
class AgentProcess:
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers", "agent"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def agent(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[AgentProcess, Control]]:
    host = f"kt{os.getpid()}"
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "LABMGR_AGENT_HOST": host,
        "LABMGR_AGENT_DATA_DIR": str(tmp_path / "agent"),
    }
    write_key(tmp_path / "agent" / "host.key", KEY)
    process = AgentProcess(env, tmp_path / "agent.log")
    process.start()
    yield process, Control(redis_server, host_queue(host))
    process.stop()


def lab(nodes: int, subnet: str = "10.242.0.0/24") -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "live",
        "networks": {"lan": {"driver": "bridge", "subnet": subnet}},
        "nodes": {f"n{i}": {"networks": {"lan": {}}} for i in range(nodes)},
    }


def host_of(control: Control) -> str:
    return control.queue.removeprefix(HOST_QUEUE_PREFIX)


def test_an_agent_applies_runs_commands_samples_and_destroys(
    agent: tuple[AgentProcess, Control],
) -> None:
    _, control = agent
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    plan = compile_dict(lab(2), deployment, default_host=host_of(control))
    try:
        heartbeat = control.wait_for("labmgr.control.heartbeat")
        assert heartbeat["host"] == host_of(control) and "veth" in heartbeat["facts"]["link_kinds"]

        control.send("apply", deployment=deployment, plan=plan, previous=None)
        result = control.wait_for("labmgr.control.deployment_result", deployment=deployment)
        assert result["ok"] is True, result["error"]
        n0 = next(n for n in result["nodes"] if n["name"] == "n0")
        assert n0["interfaces"] == [
            {"ifname": "eth0", "mac": "02:42:0a:f2:00:02", "addresses": ["10.242.0.2/24"]}
        ]
        steps = [kw for task, kw in control.seen if task == "labmgr.control.deployment_step"]
        assert [s["name"] for s in steps] == ["namespaces", "networks", "links", "nodes"]

        ping = control.send(
            "exec",
            deployment=deployment,
            token=token,
            node="n0",
            argv=["ping", "-c1", "-W2", "10.242.0.3"],
            timeout=10,
        ).get(timeout=30)
        assert ping["exit"] == 0, ping
        assert "1 received" in ping["stdout"]

        batches = [control.wait_for("labmgr.control.metrics") for _ in range(2)]
        sample = next(s for s in batches[-1]["samples"] if s["node"] == "n0")
        assert sample["token"] == token and sample["pids"] >= 1
        assert sample["interfaces"][0]["ifname"] == "eth0"
        assert sample["interfaces"][0]["rx_packets"] >= 1

        heartbeat = control.wait_for("labmgr.control.heartbeat")
        assert token in heartbeat["tokens"]
    finally:
        control.send("destroy", deployment=deployment, token=token)
        result = control.wait_for(
            "labmgr.control.deployment_result", deployment=deployment, action="destroy"
        )
    assert result["ok"] is True
    assert leftovers(token) == []


def test_an_agent_killed_mid_apply_finishes_the_deployment_when_it_restarts(
    agent: tuple[AgentProcess, Control],
) -> None:
    process, control = agent
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    plan = compile_dict(lab(40, "10.243.0.0/24"), deployment, default_host=host_of(control))
    control.wait_for("labmgr.control.heartbeat")  # up and serving
    try:
        control.send("apply", deployment=deployment, plan=plan, previous=None)
        control.wait_for("labmgr.control.deployment_step", deployment=deployment, name="links")
        process.kill()
        built = len([n for n in os.listdir("/run/netns") if n.startswith(token + "-")])

        process.start()
        result = control.wait_for("labmgr.control.deployment_result", deployment=deployment)

        assert built == 40  # killed after the namespaces, before the nodes
        assert result["ok"] is True, result["error"]
        assert sorted(n["name"] for n in result["nodes"]) == sorted(f"n{i}" for i in range(40))
        assert all(n["pid"] > 0 and n["interfaces"] for n in result["nodes"])
        assert "reconcile: running apply" in process.log.read_text(errors="replace")
    finally:
        control.send("destroy", deployment=deployment, token=token)
        control.wait_for(
            "labmgr.control.deployment_result", deployment=deployment, action="destroy"
        )
    assert leftovers(token) == []


def test_metrics_and_jobs_resume_after_redis_restarts(
    agent: tuple[AgentProcess, Control], redis_server: RedisServer
) -> None:
    _, control = agent
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    plan = compile_dict(lab(2, "10.244.0.0/24"), deployment, default_host=host_of(control))
    control.send("apply", deployment=deployment, plan=plan, previous=None)
    try:
        assert control.wait_for("labmgr.control.deployment_result", deployment=deployment)["ok"]

        redis_server.stop()
        time.sleep(3)
        redis_server.start()

        batch = control.wait_for("labmgr.control.metrics", timeout=60)
        assert {s["node"] for s in batch["samples"] if s["token"] == token} == {"n0", "n1"}
    finally:
        control.send("destroy", deployment=deployment, token=token)
        result = control.wait_for(
            "labmgr.control.deployment_result", deployment=deployment, action="destroy", timeout=60
        )
    assert result["ok"] is True
    assert leftovers(token) == []


def test_a_message_forged_on_the_broker_makes_the_agent_build_nothing(
    agent: tuple[AgentProcess, Control],
) -> None:
    """Whoever can write to Redis but lacks the host's key: an unsigned apply, one signed
    with a guessed key, and an exec asking for a shell command; nothing is built, nothing
    runs, and the agent's log says why."""
    process, control = agent
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    plan = compile_dict(lab(1, "10.245.0.0/24"), deployment, default_host=host_of(control))
    control.wait_for("labmgr.control.heartbeat")
    marker = Path(f"/tmp/lm-forged-{os.getpid()}")

    control.app.send_task(
        "labmgr.agent.apply",
        kwargs={"deployment": deployment, "plan": plan, "previous": None},
        queue=control.queue,
    )
    control.send("apply", key=bytes([7] * 32), deployment=deployment, plan=plan, previous=None)
    forged_exec = control.send(
        "exec",
        key=bytes([7] * 32),
        deployment=deployment,
        token=token,
        node="n0",
        argv=["touch", str(marker)],
        timeout=5,
    ).result.get(timeout=30)
    control.send("check", deployment=deployment, plan=plan)  # a real one, to know it got there
    control.wait_for("labmgr.control.drift", deployment=deployment)

    assert forged_exec == {"refused": "the agent refused the message (see its log)"}
    assert leftovers(token) == [] and not marker.exists()
    assert not any(t == "labmgr.control.deployment_result" for t, _ in control.seen)
    log = process.log.read_text(errors="replace")
    assert "refused labmgr.agent.apply" in log and "the message is not signed" in log
    assert "the signature does not match the host's key" in log


def test_an_agent_without_its_hosts_key_does_not_serve(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "LABMGR_AGENT_HOST": "nokey",
        "LABMGR_AGENT_DATA_DIR": str(tmp_path / "agent"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "workers", "agent"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert f"no host key at {tmp_path / 'agent' / 'host.key'}" in done.stderr
    assert "python manage.py host_register nokey" in done.stderr
    assert redis_server.client().llen(CONTROL_QUEUE) == 0  # not even a heartbeat
