"""A lab deployed from the web, end to end: REST API -> Redis -> control worker -> host
agent -> kernel, with the events and metrics a browser sees on its websocket."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.system.conftest import ROOT, Stack, wait_for

TWO_NODES: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "two-nodes.yaml").read_text())
FINAL = ("running", "failed", "destroyed", "cancelled")


class Listener:
    """A browser's websocket on a lab, every event kept in arrival order."""

    def __init__(self, stack: Stack, lab: int, who: str = "alice") -> None:
        self.events: list[dict[str, Any]] = []
        self.socket: ClientConnection = connect(
            f"{stack.ws_base}/ws/labs/{lab}/",
            additional_headers=stack.ws_headers(who),
            open_timeout=10,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.socket.recv()
            except Exception:  # the socket closed
                return
            self.events.append(json.loads(message))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["type"] == kind]

    def close(self) -> None:
        self.socket.close()


def lab_from(stack: Stack, tree: dict[str, Any], name: str) -> int:
    tree = copy.deepcopy(tree)
    tree["name"] = name
    response = stack.post("alice", "/api/labs/", json={"labfile": tree})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def deploy(stack: Stack, lab: int) -> dict[str, Any]:
    response = stack.post("alice", f"/api/labs/{lab}/deploy")
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    stack.tokens.append(body["token"])
    return body


def status(stack: Stack, deployment: int) -> str:
    return str(stack.get("alice", f"/api/deployments/{deployment}/").json()["status"])


def wait_status(stack: Stack, deployment: int, wanted: tuple[str, ...], timeout: float = 90) -> str:
    return str(
        wait_for(
            f"deployment {deployment} to be {' or '.join(wanted)}",
            lambda: (s := status(stack, deployment)) in wanted and s,
            timeout=timeout,
        )
    )


def kernel_objects(token: str) -> list[str]:
    """Every kernel object named after the deployment: netns, links, cgroups."""
    prefix = token + "-"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found = [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(prefix)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(prefix):
            found.append(f"link {name}")
    cgroup_roots = [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]
    found += [f"cgroup {p}" for root in cgroup_roots if (p := root / "labmgr" / token).exists()]
    return found


def destroy_clean(stack: Stack, lab: int, token: str, deployment: int) -> None:
    response = stack.post("alice", f"/api/labs/{lab}/destroy")
    assert response.status_code == 202, response.text
    assert wait_status(stack, deployment, ("destroyed", "failed")) == "destroyed"
    wait_for(
        f"the kernel to hold nothing of {token}", lambda: not kernel_objects(token), timeout=20
    )


def terminal_run(stack: Stack, lab: int, node: str, command: bytes, expect: bytes) -> bytes:
    url = f"{stack.ws_base}/ws/labs/{lab}/nodes/{node}/terminal?cols=100&rows=30"
    seen = b""
    with connect(url, additional_headers=stack.ws_headers("alice"), open_timeout=10) as term:
        term.send(json.dumps({"resize": [120, 40]}))
        deadline = time.monotonic() + 30
        sent = False
        while expect not in seen and time.monotonic() < deadline:
            if not sent:
                term.send(command)
                sent = True
            try:
                frame = term.recv(timeout=1)
            except TimeoutError:
                continue
            seen += frame if isinstance(frame, bytes) else frame.encode()
    return seen


@pytest.fixture
def listener_factory(stack: Stack) -> Iterator[Any]:
    opened: list[Listener] = []

    def open_(lab: int, who: str = "alice") -> Listener:
        listener = Listener(stack, lab, who)
        opened.append(listener)
        return listener

    yield open_
    for listener in opened:
        listener.close()


def test_a_lab_deploys_streams_runs_commands_and_is_destroyed_clean(
    stack: Stack, listener_factory: Any
) -> None:
    lab = lab_from(stack, TWO_NODES, "sys-two-nodes")
    browser = listener_factory(lab)
    time.sleep(0.5)  # subscribed before the deploy
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    assert body["status"] == "pending"
    assert wait_status(stack, deployment, FINAL) == "running"

    detail = stack.get("alice", f"/api/deployments/{deployment}/").json()
    assert sorted(n["name"] for n in detail["nodes"]) == ["alice", "bob"]
    assert all(n["pid"] and n["interfaces"][0]["mac"].startswith("02:42:") for n in detail["nodes"])

    ping = stack.post(
        "alice",
        f"/api/deployments/{deployment}/exec",
        json={"node": "alice", "argv": ["ping", "-c", "2", "-W", "2", "bob"], "timeout": 15},
    )
    assert ping.status_code == 200, ping.text
    assert ping.json()["exit"] == 0, ping.json()
    assert "2 received" in ping.json()["stdout"]

    wait_for("two metrics samples on the websocket", lambda: len(browser.of("metrics.sample")) >= 2)
    statuses = [
        e["status"] for e in browser.of("deployment.status") if e["deployment"] == deployment
    ]
    assert statuses[:2] == ["deploying", "running"]
    steps = browser.of("deployment.step")
    assert steps and [s["seq"] for s in steps] == sorted(s["seq"] for s in steps)
    order = [e["type"] for e in browser.events if e["type"] != "metrics.sample"]
    assert order.index("deployment.step") < len(order) - 1 - order[::-1].index("deployment.status")
    sample = browser.of("metrics.sample")[-1]["samples"][0]
    assert {"cpu_percent", "memory_current", "pids", "interfaces"} <= set(sample)

    output = terminal_run(stack, lab, "bob", b"echo answer-$((6*7))\n", b"answer-42")
    assert b"answer-42" in output

    metrics = stack.get("alice", f"/api/labs/{lab}/metrics", params={"node": "alice"}).json()
    assert len(metrics["samples"]) >= 2
    csv = stack.get("alice", f"/api/labs/{lab}/metrics", params={"format": "csv"})
    assert csv.text.startswith("deployment,node,t,")

    destroy_clean(stack, lab, token, deployment)
    wait_for(
        "the destroyed event",
        lambda: "destroyed" in [e["status"] for e in browser.of("deployment.status")],
    )


def test_an_unauthorised_user_is_refused_everywhere(stack: Stack) -> None:
    lab = lab_from(stack, TWO_NODES, "sys-private")
    for path in (f"/api/labs/{lab}/", f"/api/labs/{lab}/metrics"):
        assert stack.get("charlie", path).status_code == 404
    assert stack.post("charlie", f"/api/labs/{lab}/deploy").status_code == 404
    assert stack.post("charlie", f"/api/labs/{lab}/destroy").status_code == 404
    for path in (f"/ws/labs/{lab}/", f"/ws/labs/{lab}/nodes/alice/terminal"):
        with pytest.raises(InvalidStatus) as refused:
            connect(
                stack.ws_base + path,
                additional_headers=stack.ws_headers("charlie"),
                open_timeout=10,
            )
        assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(
            f"{stack.ws_base}/ws/labs/{lab}/",
            additional_headers={"Origin": stack.base},
            open_timeout=10,
        )


def test_metrics_resume_after_redis_restarts(stack: Stack, listener_factory: Any) -> None:
    lab = lab_from(stack, TWO_NODES, "sys-redis-restart")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    assert wait_status(stack, deployment, FINAL) == "running"
    stack.redis.stop()
    time.sleep(2)
    stack.redis.start()
    restarted = time.time()
    browser = wait_for(
        "a websocket after the restart",
        lambda: listener_factory(lab),
        timeout=30,
        errors=(InvalidStatus,),
    )
    wait_for(
        "a metrics sample taken after the restart",
        lambda: any(s["t"] > restarted for e in browser.of("metrics.sample") for s in e["samples"]),
        timeout=60,
    )
    assert status(stack, deployment) == "running"
    destroy_clean(stack, lab, token, deployment)


def test_an_agent_killed_mid_deploy_ends_running_or_failed_and_never_half_built(
    stack: Stack,
) -> None:
    tree = {
        "labfile": 1,
        "name": "sys-big",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.77.0.0/24"}},
        "nodes": {f"n{i:03d}": {"networks": {"lan": {}}} for i in range(120)},
    }
    lab = lab_from(stack, tree, "sys-big")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    wait_for(
        "the agent to start the deployment",
        lambda: status(stack, deployment) != "pending",
        every=0.02,
    )
    stack.agent.signal(signal.SIGKILL)
    stack.agent.kill()
    stack.agent.start()
    final = wait_status(stack, deployment, ("running", "failed"), timeout=120)
    if final == "running":
        netns = [o for o in kernel_objects(token) if o.startswith("netns ")]
        assert len(netns) == 120
    else:
        wait_for(
            f"the kernel to hold nothing of {token}", lambda: not kernel_objects(token), timeout=60
        )
    destroy_clean(stack, lab, token, deployment)
