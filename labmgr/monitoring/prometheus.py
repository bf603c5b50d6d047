"""The metrics of running labs for Prometheus (`GET /metrics`, docs/prometheus.md): each
node's CPU, memory, pids and IO and each of its interfaces' bytes, packets and drops, from
the latest sample its agent sent; each host's capacity and what its running labs use; the
deployments by status. Series carry `lab`, `node`, `host` and `owner` labels (and
`interface`), so a dashboard filters by any of them.

The collector reads the database at each scrape (one query per family of series), through
prometheus_client's own exposition; nothing is kept between scrapes. A node's sample older
than STALE_AFTER is left out, as Prometheus would mark a vanished target stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.db.models import Count, Max
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_node_hosts
from labmgr.hosts.models import Host
from labmgr.monitoring.models import RAW, MetricSample

STALE_AFTER = timedelta(seconds=30)
NODE = ["lab", "node", "host", "owner", "deployment"]
INTERFACE = [*NODE, "interface"]
# Interface counters of a sample: (series name, sample key, help).
INTERFACE_COUNTERS = (
    ("labmgr_interface_receive_bytes", "rx_bytes", "Bytes the node's interface received."),
    ("labmgr_interface_transmit_bytes", "tx_bytes", "Bytes the node's interface sent."),
    ("labmgr_interface_receive_packets", "rx_packets", "Packets the interface received."),
    ("labmgr_interface_transmit_packets", "tx_packets", "Packets the interface sent."),
    ("labmgr_interface_receive_drops", "rx_dropped", "Received packets the kernel dropped."),
    ("labmgr_interface_transmit_drops", "tx_dropped", "Packets to send the kernel dropped."),
    ("labmgr_interface_receive_errors", "rx_errors", "Received packets with errors."),
    ("labmgr_interface_transmit_errors", "tx_errors", "Packets that failed to be sent."),
)


class LabCollector(Collector):
    """Every series of the export, read fresh at each collect()."""

    def collect(self) -> Iterator[Metric]:
        yield from _deployments()
        yield from _hosts()
        yield from _nodes(_latest_samples())


def _deployments() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "labmgr_deployments", "Deployments in each status.", labels=["status"]
    )
    counted = dict(
        Deployment.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    for status in DeploymentStatus.values:
        family.add_metric([status], counted.get(status, 0))
    yield family


def _hosts() -> Iterator[Metric]:
    up = GaugeMetricFamily("labmgr_host_up", "1 while the host's agent reports.", labels=["host"])
    cpus = GaugeMetricFamily("labmgr_host_cpus", "CPU cores the host offers labs.", labels=["host"])
    memory = GaugeMetricFamily(
        "labmgr_host_memory_bytes", "Memory the host offers labs.", labels=["host"]
    )
    pids = GaugeMetricFamily("labmgr_host_pids", "Processes the host offers labs.", labels=["host"])
    running = GaugeMetricFamily(
        "labmgr_host_running_deployments", "Deployments running on the host.", labels=["host"]
    )
    counts = dict(
        Deployment.objects.filter(status=DeploymentStatus.RUNNING)
        .values_list("host__slug")
        .annotate(n=Count("id"))
        .values_list("host__slug", "n")
    )
    for host in Host.objects.order_by("slug"):
        labels = [host.slug]
        up.add_metric(labels, 1 if host.status == "online" else 0)
        cpus.add_metric(labels, host.cpus)
        memory.add_metric(labels, host.memory)
        pids.add_metric(labels, host.pids)
        running.add_metric(labels, counts.get(host.slug, 0))
    yield from (up, cpus, memory, pids, running)


def _latest_samples() -> list[tuple[MetricSample, list[str]]]:
    """The newest raw sample of each node of each running deployment, fresh enough, with
    its labels."""
    since = timezone.now() - STALE_AFTER
    running = Deployment.objects.filter(status=DeploymentStatus.RUNNING)
    newest = (
        MetricSample.objects.filter(deployment__in=running, resolution=RAW, t__gte=since)
        .values("deployment_id", "node")
        .annotate(t=Max("t"))
    )
    wanted = {(row["deployment_id"], row["node"], row["t"]) for row in newest}
    if not wanted:
        return []
    rows = (
        MetricSample.objects.filter(
            deployment_id__in={d for d, _, _ in wanted}, resolution=RAW, t__gte=since
        )
        .select_related("deployment__lab", "deployment__owner", "deployment__host")
        .order_by("deployment_id", "node")
    )
    found = []
    hosts: dict[int, dict[str, str]] = {}
    for row in rows:
        if (row.deployment_id, row.node, row.t) not in wanted:
            continue
        deployment = row.deployment
        if deployment.pk not in hosts:
            hosts[deployment.pk] = deployment_node_hosts(deployment)
        labels = [
            deployment.lab.name,
            row.node,
            hosts[deployment.pk].get(row.node, ""),
            deployment.owner.username if deployment.owner else "",
            str(deployment.pk),
        ]
        found.append((row, labels))
    return found


def _nodes(samples: Iterable[tuple[MetricSample, list[str]]]) -> Iterator[Metric]:
    cpu = GaugeMetricFamily(
        "labmgr_node_cpu_percent", "CPU the node used, % of one core.", labels=NODE
    )
    memory = GaugeMetricFamily("labmgr_node_memory_bytes", "Memory the node uses.", labels=NODE)
    limit = GaugeMetricFamily(
        "labmgr_node_memory_limit_bytes", "The node's memory limit (none: no series).", labels=NODE
    )
    pids = GaugeMetricFamily("labmgr_node_pids", "Processes in the node's cgroup.", labels=NODE)
    read = CounterMetricFamily("labmgr_node_io_read_bytes", "Bytes the node read.", labels=NODE)
    written = CounterMetricFamily(
        "labmgr_node_io_write_bytes", "Bytes the node wrote.", labels=NODE
    )
    counters = {
        name: CounterMetricFamily(name, text, labels=INTERFACE)
        for name, _, text in INTERFACE_COUNTERS
    }
    for row, labels in samples:
        cpu.add_metric(labels, row.cpu_percent)
        memory.add_metric(labels, row.memory_current)
        if row.memory_max is not None:
            limit.add_metric(labels, row.memory_max)
        pids.add_metric(labels, row.pids)
        read.add_metric(labels, row.io_read_bytes)
        written.add_metric(labels, row.io_write_bytes)
        for interface in row.interfaces or []:
            name = _text(interface.get("ifname"))
            if not name:
                continue
            for series, key, _ in INTERFACE_COUNTERS:
                value = interface.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    counters[series].add_metric([*labels, name], value)
    yield from (cpu, memory, limit, pids, read, written, *counters.values())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
