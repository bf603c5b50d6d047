"""Writes on metrics: storing an agent's batch (once) and the retention/downsampling pass."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labmgr import events
from labmgr.deployments.choices import KEPT_STATES
from labmgr.deployments.models import Deployment
from labmgr.monitoring.models import MINUTE, RAW, MetricSample

log = logging.getLogger(__name__)

NODE_NUMBERS = (
    "cpu_percent",
    "memory_current",
    "memory_max",
    "pids",
    "io_read_bytes",
    "io_write_bytes",
)
INTERFACE_NUMBERS = (
    "rx_bytes",
    "tx_bytes",
    "rx_packets",
    "tx_packets",
    "rx_dropped",
    "tx_dropped",
    "rx_errors",
    "tx_errors",
    "rx_bps",
    "tx_bps",
)


def metrics_record(*, host: str, samples: list[dict[str, Any]]) -> int:
    """Store the samples of deployments the host runs (each (node, second) once, however
    often the batch is delivered) and publish the new ones to their labs. Returns how
    many were new."""
    clean = [s for s in (_clean(raw) for raw in samples) if s is not None]
    tokens = {s["token"] for s in clean}
    deployments = {
        d.token: d
        for d in Deployment.objects.filter(
            Q(host__slug=host) | Q(placements__host__slug=host),  # a part of a multi-host lab
            token__in=tokens,
            status__in=sorted(KEPT_STATES),
        ).distinct()
    }
    rows = [_row(deployments[s["token"]], s) for s in clean if s["token"] in deployments]
    if not rows:
        return 0
    with transaction.atomic():
        known = set(
            MetricSample.objects.filter(
                deployment__in=deployments.values(),
                resolution=RAW,
                t__in={r.t for r in rows},
            ).values_list("deployment_id", "node", "t")
        )
        new = [r for r in rows if (r.deployment_id, r.node, r.t) not in known]
        MetricSample.objects.bulk_create(new, ignore_conflicts=True)
        by_deployment: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in new:
            by_deployment[row.deployment_id].append(sample_dict(row))
        for deployment in deployments.values():
            if batch := by_deployment.get(deployment.pk):
                events.publish(
                    [events.lab_group(deployment.lab_id)],
                    {
                        "type": "metrics.sample",
                        "lab": deployment.lab_id,
                        "deployment": deployment.pk,
                        "samples": batch,
                    },
                )
    return len(new)


def _clean(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The sample with the fields of docs/messages.md, numbers checked; None if unusable."""
    try:
        sample: dict[str, Any] = {
            "token": str(raw["token"]),
            "node": str(raw["node"])[:31],
            "t": float(raw["t"]),
        }
        for key in NODE_NUMBERS:
            value = raw.get(key)
            sample[key] = None if value is None else max(0, _number(value))
        sample["interfaces"] = [
            {"ifname": str(i.get("ifname", ""))[:15]}
            | {k: max(0, _number(i.get(k) or 0)) for k in INTERFACE_NUMBERS}
            for i in raw.get("interfaces") or []
            if isinstance(i, Mapping)
        ]
    except (KeyError, TypeError, ValueError):
        log.warning("unusable metrics sample dropped: %.200r", raw)
        return None
    return sample


def _number(value: Any) -> float | int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise TypeError(f"not a number: {value!r}")


def _row(deployment: Deployment, s: dict[str, Any]) -> MetricSample:
    return MetricSample(
        deployment=deployment,
        node=s["node"],
        # Whole seconds: one sample per node and second, whatever the agent's jitter.
        t=datetime.fromtimestamp(int(s["t"]), tz=UTC),
        resolution=RAW,
        cpu_percent=float(s["cpu_percent"] or 0),
        memory_current=int(s["memory_current"] or 0),
        memory_max=None if s["memory_max"] is None else int(s["memory_max"]),
        pids=int(s["pids"] or 0),
        io_read_bytes=int(s["io_read_bytes"] or 0),
        io_write_bytes=int(s["io_write_bytes"] or 0),
        interfaces=s["interfaces"],
    )


def sample_dict(row: MetricSample) -> dict[str, Any]:
    """A stored sample as the API and the browser events show it."""
    return {
        "deployment": row.deployment_id,
        "node": row.node,
        "t": row.t.timestamp(),
        "resolution": row.resolution,
        "cpu_percent": row.cpu_percent,
        "memory_current": row.memory_current,
        "memory_max": row.memory_max,
        "pids": row.pids,
        "io_read_bytes": row.io_read_bytes,
        "io_write_bytes": row.io_write_bytes,
        "interfaces": row.interfaces,
    }


def metrics_downsample(*, now: datetime | None = None) -> tuple[int, int]:
    """Average raw samples older than the raw retention into one sample per node and
    minute, and drop what is older than the retention. Returns (averaged, deleted)."""
    now = now or timezone.now()
    raw_limit = now - timedelta(seconds=settings.LABMGR_METRICS_RAW_RETENTION)
    old = MetricSample.objects.filter(resolution=RAW, t__lt=raw_limit).order_by("t")
    buckets: dict[tuple[int, str, datetime], list[MetricSample]] = defaultdict(list)
    for row in old.iterator(chunk_size=2000):
        minute = row.t.replace(second=0, microsecond=0)
        buckets[(row.deployment_id, row.node, minute)].append(row)
    with transaction.atomic():
        MetricSample.objects.bulk_create(
            (_average(key, rows) for key, rows in buckets.items()), ignore_conflicts=True
        )
        old.delete()
        limit = now - timedelta(seconds=settings.LABMGR_METRICS_RETENTION)
        deleted, _ = MetricSample.objects.filter(t__lt=limit).delete()
    return len(buckets), deleted


def _average(key: tuple[int, str, datetime], rows: list[MetricSample]) -> MetricSample:
    deployment_id, node, minute = key
    n = len(rows)
    last = rows[-1]
    interfaces = [dict(i) for i in last.interfaces]
    for interface in interfaces:
        for rate in ("rx_bps", "tx_bps"):
            values = [
                i.get(rate, 0)
                for r in rows
                for i in r.interfaces
                if i.get("ifname") == interface["ifname"]
            ]
            interface[rate] = sum(values) / len(values) if values else 0
    limits = [r.memory_max for r in rows if r.memory_max is not None]
    return MetricSample(
        deployment_id=deployment_id,
        node=node,
        t=minute,
        resolution=MINUTE,
        cpu_percent=sum(r.cpu_percent for r in rows) / n,
        memory_current=sum(r.memory_current for r in rows) // n,
        memory_max=max(limits) if limits else None,
        pids=round(sum(r.pids for r in rows) / n),
        # Counters: the last value of the minute.
        io_read_bytes=last.io_read_bytes,
        io_write_bytes=last.io_write_bytes,
        interfaces=interfaces,
    )
