"""Metrics batches from agents, their retention, and the metrics endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.deployments import tasks as deployment_tasks
from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.deployments.models import Deployment
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.monitoring import tasks
from labmgr.monitoring.models import MetricSample
from labmgr.monitoring.services import metrics_downsample
from tests.unit.labmgr.conftest import Dispatched

Api = Callable[[User | None], APIClient]
T0 = 1_800_000_000.0  # a fixed second, 2027-01-15


def sample(token: str, node: str = "web", t: float = T0, cpu: float = 12.5) -> dict[str, Any]:
    return {
        "token": token,
        "node": node,
        "t": t,
        "cpu_percent": cpu,
        "memory_current": 1 << 20,
        "memory_max": 256 << 20,
        "pids": 3,
        "io_read_bytes": 10,
        "io_write_bytes": 20,
        "interfaces": [
            {
                "ifname": "eth0",
                "rx_bytes": 100,
                "tx_bytes": 200,
                "rx_packets": 1,
                "tx_packets": 2,
                "rx_dropped": 0,
                "tx_dropped": 0,
                "rx_errors": 4,
                "tx_errors": 0,
                "rx_bps": 800.0,
                "tx_bps": 1600.0,
            }
        ],
    }


@pytest.fixture
def running(shared_lab: Lab, alice: User, online_host: Host, dispatched: Dispatched) -> Deployment:
    deployment = deployment_deploy(lab=shared_lab, actor=alice)
    deployment_tasks.deployment_result(
        deployment=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )
    return deployment


def test_a_batch_is_stored_once_however_often_it_arrives(running: Deployment) -> None:
    batch = [sample(running.token), sample(running.token, node="client")]
    tasks.metrics(host="local", sent=time.time(), samples=batch)
    tasks.metrics(host="local", sent=time.time(), samples=batch)
    assert sorted(MetricSample.objects.values_list("node", "cpu_percent")) == [
        ("client", 12.5),
        ("web", 12.5),
    ]


def test_new_samples_are_published_to_the_lab(
    running: Deployment, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    sent: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr("labmgr.events._send", lambda groups, event: sent.append((groups, event)))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.metrics(host="local", sent=time.time(), samples=[sample(running.token)])
        tasks.metrics(host="local", sent=time.time(), samples=[sample(running.token)])
    [(groups, event)] = sent
    assert groups == [f"lab.{running.lab_id}"]
    assert event["type"] == "metrics.sample"
    assert event["samples"][0]["interfaces"][0]["rx_bps"] == 800.0


def test_samples_of_other_hosts_or_unknown_tokens_or_garbage_are_dropped(
    running: Deployment,
) -> None:
    tasks.metrics(host="elsewhere", sent=time.time(), samples=[sample(running.token)])
    tasks.metrics(
        host="local", sent=time.time(), samples=[sample("lm9z"), {"token": running.token}]
    )
    tasks.metrics(
        host="local", sent=time.time(), samples=[sample(running.token) | {"pids": "many"}]
    )
    assert not MetricSample.objects.exists()


def test_old_samples_are_averaged_per_minute_then_dropped(
    running: Deployment, settings: Any
) -> None:
    settings.LABMGR_METRICS_RAW_RETENTION = 60
    settings.LABMGR_METRICS_RETENTION = 3600
    start = T0 - T0 % 60
    batch = [sample(running.token, t=start + i, cpu=10.0 * (i % 2)) for i in range(60)]
    tasks.metrics(host="local", sent=time.time(), samples=batch)
    now = datetime.fromtimestamp(start + 300, tz=UTC)
    assert metrics_downsample(now=now) == (1, 0)
    [row] = MetricSample.objects.all()
    assert (row.resolution, row.cpu_percent, row.t.timestamp()) == (60, 5.0, start)
    assert metrics_downsample(now=now + timedelta(hours=2)) == (0, 1)
    assert not MetricSample.objects.exists()


def test_the_endpoint_serves_json_and_csv_filtered_by_node_and_time(
    api: Api, bob: User, running: Deployment
) -> None:
    batch = [
        sample(running.token, t=T0),
        sample(running.token, t=T0 + 1),
        sample(running.token, node="client"),
    ]
    tasks.metrics(host="local", sent=time.time(), samples=batch)
    url = f"/api/labs/{running.lab_id}/metrics"
    body = api(bob).get(url, {"node": "web", "since": str(T0 + 1)}).json()
    assert [(s["node"], s["t"]) for s in body["samples"]] == [("web", T0 + 1)]
    csv = api(bob).get(url, {"format": "csv", "node": "client"})
    assert csv["Content-Type"] == "text/csv; charset=utf-8"
    header, line = csv.content.decode().splitlines()
    assert header.startswith("deployment,node,t,resolution,cpu_percent")
    assert line.split(",")[1:3] == ["client", str(T0)]
    assert line.endswith(",eth0,100,200,1,2,0,0,4,0,800.0,1600.0")


def test_the_endpoint_refuses_a_bad_since_and_strangers(
    api: Api, alice: User, charlie: User, running: Deployment
) -> None:
    url = f"/api/labs/{running.lab_id}/metrics"
    response = api(alice).get(url, {"since": "yesterday"})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "since": ["'yesterday' is neither an ISO 8601 time nor Unix seconds."]
    }
    assert api(charlie).get(url).status_code == 404
    assert api(None).get(url).status_code == 401
