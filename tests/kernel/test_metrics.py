"""Metrics from real cgroups and interface counters of running nodes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from workers.metrics import Sampler

from .conftest import Lab


def pair(subnet: str = "10.245.0.0/24") -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "sampled",
        "networks": {"lan": {"driver": "bridge", "subnet": subnet}},
        "nodes": {
            "busy": {"networks": {"lan": {}}, "limits": {"memory": "64M", "pids": 32}},
            "idle": {"networks": {"lan": {}}},
        },
    }


def by_node(samples: list[dict[str, Any]], token: str) -> dict[str, dict[str, Any]]:
    return {s["node"]: s for s in samples if s["token"] == token}


def test_it_samples_cpu_memory_pids_and_interface_rates_of_running_nodes(
    build: Any, data_dir: Path
) -> None:
    lab: Lab = build(pair())
    sampler = Sampler(data_dir / "journal")
    first = by_node(sampler.sample(), lab.token)
    # CPU and traffic between two samples: a busy loop, and pings to the other node.
    lab.run("busy", "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
    assert lab.ping("busy", "10.245.0.3")
    time.sleep(0.2)
    second = by_node(sampler.sample(), lab.token)

    assert set(first) == set(second) == {"busy", "idle"}
    busy = second["busy"]
    assert busy["cpu_percent"] > 1
    assert 0 < busy["memory_current"] <= busy["memory_max"] == 64 << 20
    assert second["idle"]["memory_max"] is None
    assert busy["pids"] >= 1
    [eth0] = busy["interfaces"]
    assert eth0["ifname"] == "eth0"
    assert eth0["tx_packets"] > first["busy"]["interfaces"][0]["tx_packets"]
    assert eth0["tx_bps"] > 0 and eth0["rx_bps"] > 0


def test_a_stopped_node_is_no_longer_sampled(build: Any, data_dir: Path) -> None:
    lab: Lab = build(pair("10.246.0.0/24"))
    sampler = Sampler(data_dir / "journal")
    assert set(by_node(sampler.sample(), lab.token)) == {"busy", "idle"}

    driver = lab.executor.driver()
    try:
        driver.kill_cgroup(lab.cgroup("idle"))
    finally:
        driver.close()

    assert set(by_node(sampler.sample(), lab.token)) == {"busy"}
