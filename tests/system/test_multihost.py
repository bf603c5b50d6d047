"""One lab across two hosts, end to end: two more agents on this machine, each a
simulated host (its own root network namespace, joined to the other by an underlay veth
made here, its own data directory and cgroup parent, so that one host's destroy kills
only its own nodes), one overlay network between them, deployed through the REST API;
nodes on different hosts ping each other by exec; destroy leaves nothing in either
kernel."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from labplan import naming
from tests.system.conftest import PYTHON, ROOT, Process, Stack, register_host, wait_for
from tests.system.test_live_deployments import deploy, kernel_objects, lab_from, wait_status
from workers.kernel.netns import Namespaces

UNDERLAY = {"a": "10.239.0.1", "b": "10.239.0.2"}
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_dirs(parent: str) -> list[Path]:
    """The agent's cgroup parent in every hierarchy (v2, or each v1 controller)."""
    roots = [CGROUP_ROOT, *(p for p in CGROUP_ROOT.iterdir() if p.is_dir())]
    return [d for root in roots if (d := root / parent).is_dir()]


def _remove_cgroup_tree(directory: Path) -> None:
    for child in sorted((p for p in directory.rglob("*") if p.is_dir()), reverse=True):
        child.rmdir()
    directory.rmdir()


# The `ip` tool, not pyroute2's IPRoute: in this tier the browser tests leave an asyncio
# loop running on the main thread, where IPRoute cannot start its own.
def _ip(netns: str, *args: str) -> str:
    done = subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True, check=True)
    return done.stdout


def _links(netns: str, prefix: str) -> list[str]:
    names = [line.split(": ")[1].split("@")[0] for line in _ip(netns, "-o", "link").splitlines()]
    return [n for n in names if n.startswith(prefix)]


def _underlay(netns: dict[str, str]) -> None:
    """The simulated hosts' root namespaces, joined by a veth named "underlay"."""
    with Namespaces() as ns:
        for name in netns.values():
            ns.ensure(name)
    _ip(
        netns["a"],
        "link",
        "add",
        "underlay",
        "type",
        "veth",
        "peer",
        "underlay",
        "netns",
        netns["b"],
    )
    for key, name in netns.items():
        _ip(name, "addr", "add", f"{UNDERLAY[key]}/24", "dev", "underlay")
        _ip(name, "link", "set", "underlay", "up")


def _remove_namespaces(names: Iterable[str]) -> None:
    with Namespaces() as ns:
        for name in names:
            ns.remove(name)


@pytest.fixture
def two_hosts(stack: Stack, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two agents, each serving a host of its own: a root namespace made here (joined by
    the underlay veth), a data directory, an underlay address. Yields host slug by key."""
    tag = naming.base36(os.getpid() % 1_000_000)
    netns = {key: f"lmt{tag}-h{key}" for key in UNDERLAY}
    slugs = {key: f"mh{tag}-{key}" for key in UNDERLAY}
    parents = {key: f"labmgr-mh{tag}-{key}" for key in UNDERLAY}
    try:
        _underlay(netns)
    except BaseException:
        _remove_namespaces(netns.values())
        raise
    env = {
        key: {
            **stack.agent.env,
            "LABMGR_AGENT_HOST": slugs[key],
            "LABMGR_AGENT_DATA_DIR": str(tmp_path / f"agent-{key}"),
            "LABMGR_AGENT_ROOT_NETNS": f"/run/netns/{netns[key]}",
            "LABMGR_AGENT_UNDERLAY": UNDERLAY[key],
            "LABMGR_AGENT_CGROUP_PARENT": parents[key],
        }
        for key in UNDERLAY
    }
    agents = [
        Process(
            f"agent-{key}",
            [PYTHON, "-m", "workers", "agent"],
            env[key],
            tmp_path / f"agent-{key}.log",
        )
        for key in UNDERLAY
    ]
    tokens_before = len(stack.tokens)
    for key in UNDERLAY:
        register_host(stack.env, slugs[key], tmp_path / f"agent-{key}")
    for agent in agents:
        agent.start()
    try:
        wait_for(
            "both simulated hosts to come online",
            lambda: (
                {slugs["a"], slugs["b"]}
                <= {
                    h["slug"]
                    for h in stack.get("alice", "/api/hosts/").json()["results"]
                    if h["status"] == "online"
                }
            ),
            timeout=60,
        )
        yield {
            **slugs,
            **{f"netns_{k}": v for k, v in netns.items()},
            **{f"cgroup_{k}": v for k, v in parents.items()},
        }
    except BaseException:
        for agent in agents:
            print(f"--- {agent.name}\n{agent.tail()}")
        raise
    finally:
        for agent in agents:
            agent.stop()
        # What a failed test left: each host's part, by token, with that host's settings.
        for token in stack.tokens[tokens_before:]:
            for key in UNDERLAY:
                destroy = [PYTHON, "-m", "workers", "destroy", token]
                subprocess.run(destroy, env=env[key], cwd=ROOT, capture_output=True, check=False)
        _remove_namespaces(netns.values())
        for parent in parents.values():
            for directory in _cgroup_dirs(parent):
                _remove_cgroup_tree(directory)


def _book(stack: Stack, slug: str) -> None:
    hosts = stack.get("alice", "/api/hosts/").json()["results"]
    host = next(h for h in hosts if h["slug"] == slug)
    start = datetime.now(UTC)
    body = {
        "host": host["id"],
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "whole_host": True,
    }
    response = stack.post("alice", "/api/reservations/", json=body)
    assert response.status_code == 201, response.text


def _exec(stack: Stack, deployment: int, node: str, argv: list[str]) -> dict[str, Any]:
    body = {"node": node, "argv": argv, "timeout": 15}
    response = stack.post("alice", f"/api/deployments/{deployment}/exec", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_nodes_on_two_hosts_reach_each_other_over_an_overlay_and_both_kernels_end_clean(
    stack: Stack, two_hosts: dict[str, str]
) -> None:
    for key in ("a", "b"):
        _book(stack, two_hosts[key])
    tree = {
        "labfile": 1,
        "name": "across",
        "networks": {"ov": {"driver": "overlay", "subnet": "10.240.0.0/24"}},
        "nodes": {
            "left": {"host": two_hosts["a"], "networks": {"ov": {"ipv4": "10.240.0.10"}}},
            "right": {"host": two_hosts["b"], "networks": {"ov": {"ipv4": "10.240.0.11"}}},
        },
    }
    lab = lab_from(stack, tree, "across")
    body = deploy(stack, lab)
    deployment, token = int(body["id"]), str(body["token"])
    assert (body["host"], body["hosts"]) == (two_hosts["a"], [two_hosts["a"], two_hosts["b"]])

    assert wait_status(stack, deployment, ("running", "failed")) == "running"
    detail = stack.get("alice", f"/api/deployments/{deployment}/").json()
    assert {n["name"]: n["host"] for n in detail["nodes"]} == {
        "left": two_hosts["a"],
        "right": two_hosts["b"],
    }
    # Each node lives in its own host's cgroup parent: a destroy on one host kills only it.
    for node in detail["nodes"]:
        key = "a" if node["host"] == two_hosts["a"] else "b"
        cgroups = Path(f"/proc/{node['pid']}/cgroup").read_text()
        # (inside the reservation's cgroup, r<id>, when the lab runs in one)
        within = rf"/{two_hosts[f'cgroup_{key}']}/(r[0-9a-z]+/)?{token}/"
        assert re.search(within, cgroups), (node["name"], cgroups)
    ping = _exec(stack, deployment, "left", ["ping", "-c", "2", "-W", "2", "10.240.0.11"])
    assert ping["exit"] == 0, ping
    back = _exec(stack, deployment, "right", ["ping", "-c", "2", "-W", "2", "10.240.0.10"])
    assert back["exit"] == 0, back
    # Each host holds its part only: its own VXLAN and overlay bridge.
    assert _links(two_hosts["netns_a"], token) and _links(two_hosts["netns_b"], token)

    response = stack.post("alice", f"/api/labs/{lab}/destroy")
    assert response.status_code == 202, response.text
    assert wait_status(stack, deployment, ("destroyed", "failed")) == "destroyed"
    wait_for(f"the kernel to hold nothing of {token}", lambda: not kernel_objects(token), 20)
    assert _links(two_hosts["netns_a"], token) == []
    assert _links(two_hosts["netns_b"], token) == []
    for key in ("a", "b"):
        parent = two_hosts[f"cgroup_{key}"]
        assert [d for p in _cgroup_dirs(parent) if (d := p / token).exists()] == []
