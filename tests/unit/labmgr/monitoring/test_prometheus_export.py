"""The Prometheus export at /metrics: off without its token, refused without the token,
and, with it, the series of running labs' nodes and interfaces with their labels, the
hosts and the deployments by status, read back by prometheus_client's own parser."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from labmgr.deployments.models import Deployment
from labmgr.monitoring import tasks
from tests.unit.labmgr.monitoring.test_metrics import running, sample

__all__ = ["running"]
TOKEN = "scrape-token-for-tests"


@pytest.fixture
def token(settings: Any) -> str:
    settings.LABMGR_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            series.setdefault(s.name, []).append((s.labels, s.value))
    return series


def test_the_export_is_off_without_its_token(client: Client, settings: Any) -> None:
    settings.LABMGR_METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 404
    assert b"set LABMGR_METRICS_TOKEN" in response.content


@pytest.mark.parametrize("header", ["", "Bearer wrong", f"Token {TOKEN}", "Bearer "])
def test_a_scrape_without_the_token_is_refused(client: Client, token: str, header: str) -> None:
    response = client.get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="labmgr metrics"'
    assert b"labmgr_node" not in response.content


def test_running_nodes_and_their_interfaces_are_series_with_labels(
    client: Client, token: str, running: Deployment
) -> None:
    now = time.time()
    tasks.metrics(host="local", sent=now, samples=[sample(running.token, t=now, cpu=37.5)])
    series = scrape(client)

    labels = {
        "lab": running.lab.name,
        "node": "web",
        "host": "local",
        "owner": running.owner.username,
        "deployment": str(running.pk),
    }
    assert series["labmgr_node_cpu_percent"] == [(labels, 37.5)]
    assert series["labmgr_node_memory_bytes"] == [(labels, float(1 << 20))]
    assert series["labmgr_node_memory_limit_bytes"] == [(labels, float(256 << 20))]
    assert series["labmgr_node_pids"] == [(labels, 3.0)]
    assert series["labmgr_node_io_write_bytes_total"] == [(labels, 20.0)]
    eth0 = {**labels, "interface": "eth0"}
    assert series["labmgr_interface_receive_bytes_total"] == [(eth0, 100.0)]
    assert series["labmgr_interface_transmit_packets_total"] == [(eth0, 2.0)]
    assert series["labmgr_interface_receive_errors_total"] == [(eth0, 4.0)]
    assert ({"host": "local"}, 1.0) in series["labmgr_host_up"]
    assert ({"host": "local"}, 1.0) in series["labmgr_host_running_deployments"]
    statuses = dict((s["status"], v) for s, v in series["labmgr_deployments"])
    assert statuses["running"] == 1.0 and statuses["failed"] == 0.0


def test_a_stale_sample_and_a_destroyed_lab_are_no_series(
    client: Client, token: str, running: Deployment
) -> None:
    old = time.time() - 600
    tasks.metrics(host="local", sent=old, samples=[sample(running.token, t=old)])
    assert "labmgr_node_cpu_percent" not in scrape(client)

    now = time.time()
    tasks.metrics(host="local", sent=now, samples=[sample(running.token, t=now)])
    assert "labmgr_node_cpu_percent" in scrape(client)
    Deployment.objects.filter(pk=running.pk).update(status="destroyed")
    assert "labmgr_node_cpu_percent" not in scrape(client)


def test_the_grafana_dashboard_and_the_docs_ask_only_for_exported_series(
    client: Client, token: str, running: Deployment
) -> None:
    now = time.time()
    tasks.metrics(host="local", sent=now, samples=[sample(running.token, t=now)])
    exported = set(scrape(client))
    root = Path(__file__).parents[4]
    dashboard = json.loads((root / "docs" / "grafana-labmgr.json").read_text())
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"labmgr_[a-z_]+", target["expr"])
    }
    asked |= set(re.findall(r"labmgr_[a-z_]+", (root / "docs" / "prometheus.md").read_text()))
    assert asked and asked <= exported, asked - exported
