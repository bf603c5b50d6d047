"""The /metrics export scraped by a real Prometheus (Debian's), on loopback, with the
bearer token of the documented scrape config: a running lab's nodes and interfaces appear
as series labelled by lab, node, host and owner, the host's and the deployments' too, and
a scraper without the token gets nothing."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.system.conftest import Process, Stack, free_port, wait_for
from tests.system.test_live_deployments import (
    TWO_NODES,
    deploy,
    destroy_clean,
    lab_from,
    wait_status,
)

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: labmgr
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {token_file}
    static_configs:
      - targets: ["{target}"]
  - job_name: labmgr-no-token
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
"""


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.base}/api/v1/query", params={"query": promql}, timeout=10)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is installed by scripts/setup test"
    token_file = tmp_path / "token"
    token_file.write_text(stack.env["LABMGR_METRICS_TOKEN"])
    token_file.chmod(0o600)
    config = tmp_path / "prometheus.yml"
    target = stack.base.removeprefix("http://")
    config.write_text(SCRAPE_CONFIG.format(token_file=token_file, target=target))
    port = free_port()
    process = Process(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        dict(stack.env),
        tmp_path / "prometheus.log",
    )
    process.start()
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_for(
            "Prometheus to answer",
            lambda: requests.get(f"{server.base}/-/ready", timeout=2).ok,
            timeout=60,
            errors=(requests.RequestException,),
        )
        yield server
    finally:
        process.stop()


def test_prometheus_scrapes_a_running_labs_series(stack: Stack, prometheus: Prometheus) -> None:
    # On this stack's own host, on a subnet of its own: the tiers' other labs and the
    # simulated hosts of the multi-host test stay out of its way.
    tree = copy.deepcopy(TWO_NODES)
    tree["networks"] = {"lan": {"driver": "bridge", "subnet": "10.213.120.0/24"}}
    for node in tree["nodes"].values():
        node["host"] = stack.host
    lab = lab_from(stack, tree, "scraped")
    deployment = deploy(stack, lab)
    try:
        assert wait_status(stack, deployment["id"], ("running", "failed")) == "running"

        def series() -> list[dict[str, Any]]:
            found = prometheus.query('labmgr_node_pids{lab="scraped"}')
            return found if len(found) == 2 else []

        nodes = wait_for("Prometheus to hold both nodes' pids", series, timeout=60)
        labels = {item["metric"]["node"]: item["metric"] for item in nodes}
        assert set(labels) == {"alice", "bob"}
        assert labels["alice"]["host"] == stack.host
        assert labels["alice"]["owner"] == "alice"
        assert labels["alice"]["deployment"] == str(deployment["id"])
        assert all(float(item["value"][1]) >= 1 for item in nodes)  # the node's init at least

        eth0 = wait_for(
            "the interfaces' counters",
            lambda: prometheus.query(
                'labmgr_interface_transmit_packets_total{lab="scraped",interface="eth0"}'
            ),
            timeout=30,
        )
        assert {item["metric"]["node"] for item in eth0} == {"alice", "bob"}
        up = prometheus.query(f'labmgr_host_up{{host="{stack.host}"}}')
        assert [float(item["value"][1]) for item in up] == [1.0]
        running = prometheus.query('labmgr_deployments{status="running"}')
        assert float(running[0]["value"][1]) >= 1

        # The scraper without the token is refused: its target is down, with no series.
        # (Its first scrape may come after the other job's: wait for the series.)
        refused = wait_for(
            "the token-less job's first scrape",
            lambda: prometheus.query('up{job="labmgr-no-token"}'),
            timeout=30,
        )
        assert [float(item["value"][1]) for item in refused] == [0.0]
        assert prometheus.query('labmgr_node_pids{job="labmgr-no-token"}') == []
    finally:
        destroy_clean(stack, lab, deployment["token"], deployment["id"])
