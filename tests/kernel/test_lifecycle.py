"""Overlay across simulated hosts, crash recovery, sweep: and nothing left afterwards."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labplan import naming
from workers.kernel.netns import Namespaces
from workers.wiring import kernel_executor

from .conftest import Lab, compile_dict, leftovers, new_deployment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_hosts() -> Iterator[dict[str, str]]:
    """Two namespaces standing for two hosts, joined by an underlay veth made here."""
    tag = naming.base36(os.getpid() % 1_000_000)
    names = {"ha": f"lmt{tag}-ha", "hb": f"lmt{tag}-hb"}
    underlay = {"ha": "10.236.0.1", "hb": "10.236.0.2"}
    with Namespaces() as ns:
        for name in names.values():
            ns.ensure(name)
        fd = os.open(ns.path(names["hb"]), os.O_RDONLY)
        ipr = ns.ipr(names["ha"])
        ipr.link(
            "add", ifname="underlay", kind="veth", peer={"ifname": "underlay", "net_ns_fd": fd}
        )
        os.close(fd)
        for host, name in names.items():
            sock = ns.ipr(name)
            index = sock.link_lookup(ifname="underlay")[0]
            sock.addr("add", index=index, address=underlay[host], prefixlen=24)
            sock.link("set", index=index, state="up")
    yield {**names, **{f"{h}_address": a for h, a in underlay.items()}}
    with Namespaces() as ns:
        for name in names.values():
            ns.remove(name)


def test_overlay_nodes_on_two_hosts_reach_each_other(
    two_hosts: dict[str, str], tmp_path: Path
) -> None:
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    lab = {
        "labfile": 1,
        "name": "overlay",
        "networks": {"ov": {"driver": "overlay", "subnet": "10.237.0.0/24"}},
        "nodes": {
            "left": {"host": "ha", "networks": {"ov": {"ipv4": "10.237.0.10"}}},
            "right": {"host": "hb", "networks": {"ov": {"ipv4": "10.237.0.11"}}},
        },
    }
    underlay = {"ha": two_hosts["ha_address"], "hb": two_hosts["hb_address"]}
    plan = compile_dict(lab, deployment, underlay=underlay)
    executors = {
        host: kernel_executor(tmp_path / host, root_netns=f"/run/netns/{two_hosts[host]}")
        for host in ("ha", "hb")
    }
    try:
        results = {host: ex.apply(plan, host) for host, ex in executors.items()}
        left = Lab(executors["ha"], token, results["ha"])

        assert left.ping("left", "10.237.0.11")
        assert left.ping("left", "10.237.0.1")  # the overlay gateway, held on host ha
    finally:
        for executor in executors.values():
            executor.destroy(token)
    assert leftovers(token) == []
    for host in ("ha", "hb"):  # the simulated hosts' own links are gone too
        with Namespaces(f"/run/netns/{two_hosts[host]}") as ns:
            names = [str(link.get("ifname")) for link in ns.ipr(None).get_links()]
        assert [n for n in names if n.startswith(token)] == []


def crash_lab(nodes: int) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "crash",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.238.0.0/24"}},
        "nodes": {f"n{i}": {"networks": {"lan": {}}, "limits": {"pids": 64}} for i in range(nodes)},
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_apply_killed_midway_converges_on_reapply_and_destroys_cleanly(
    tmp_path: Path, seed: int
) -> None:
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    labfile = tmp_path / "crash.yaml"
    labfile.write_text(yaml.safe_dump(crash_lab(8)))
    env = {**os.environ, "LABMGR_AGENT_DATA_DIR": str(tmp_path / "agent")}
    kernel_executor(tmp_path / "agent")  # builds the init before the clock starts
    argv = [sys.executable, "-m", "workers", "apply", str(labfile), "--deployment", str(deployment)]
    apply = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert apply.stdout is not None
    steps_before_kill = random.Random(seed).randrange(5, 40)
    for _ in range(steps_before_kill):
        if not apply.stdout.readline():
            break
    apply.send_signal(signal.SIGKILL)
    apply.wait()

    executor = kernel_executor(tmp_path / "agent")
    try:
        result = executor.apply(compile_dict(crash_lab(8), deployment), "local")
        lab = Lab(executor, token, result)
        assert len(result.nodes) == 8
        assert lab.ping("n0", "10.238.0.9")
        assert len([n for n in os.listdir("/run/netns") if n.startswith(token)]) == 8
    finally:
        removed = executor.destroy(token)
    assert f"cgroup {token}" in removed
    assert leftovers(token) == []


def test_sweep_removes_a_deployment_nobody_owns(tmp_path: Path) -> None:
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    executor = kernel_executor(tmp_path)
    executor.apply(compile_dict(crash_lab(2), deployment), "local")
    others = executor.found_tokens() - {token}

    removed = executor.sweep(live=others)

    assert f"netns {token}-n0" in removed and f"cgroup {token}" in removed
    assert leftovers(token) == []


def test_destroy_works_while_another_lab_runs(tmp_path: Path) -> None:
    executor = kernel_executor(tmp_path)
    first, second = new_deployment(), new_deployment()
    beside = crash_lab(2)  # a lab of its own subnet: two labs never route one subnet
    beside["networks"]["lan"]["subnet"] = "10.251.0.0/24"
    executor.apply(compile_dict(crash_lab(2), first), "local")
    result = executor.apply(compile_dict(beside, second), "local")
    second_token = naming.deployment_token(second)
    try:
        started = time.monotonic()
        executor.destroy(naming.deployment_token(first))
        assert time.monotonic() - started < 5
        assert leftovers(naming.deployment_token(first)) == []
        lab = Lab(executor, second_token, result)
        assert lab.ping("n0", "10.251.0.3")
    finally:
        executor.destroy(second_token)
    assert leftovers(second_token) == []
