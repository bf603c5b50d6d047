"""Reads on metrics: a lab's recent samples, as rows or as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from labmgr.labs.models import Lab
from labmgr.monitoring.models import MetricSample
from labmgr.monitoring.services import INTERFACE_NUMBERS, NODE_NUMBERS, sample_dict

# A response holds at most this many samples (200 nodes for 5 minutes).
MAX_SAMPLES = 60_000
CSV_NODE_COLUMNS = ["deployment", "node", "t", "resolution", *NODE_NUMBERS]
CSV_INTERFACE_COLUMNS = ["ifname", *INTERFACE_NUMBERS]


def lab_metrics(
    *, lab: Lab, since: datetime | None = None, node: str | None = None
) -> list[dict[str, Any]]:
    """The lab's samples (every deployment of it), oldest first, the newest MAX_SAMPLES."""
    rows = MetricSample.objects.filter(deployment__lab=lab)
    if since is not None:
        rows = rows.filter(t__gte=since)
    if node:
        rows = rows.filter(node=node)
    newest = list(rows.order_by("-t", "node")[:MAX_SAMPLES])
    return [sample_dict(r) for r in reversed(newest)]


def metrics_csv(samples: Iterable[dict[str, Any]]) -> str:
    """One line per interface of each sample (one line with empty interface columns for a
    node without interfaces)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_NODE_COLUMNS + CSV_INTERFACE_COLUMNS)
    for sample in samples:
        node = [sample[c] if sample[c] is not None else "" for c in CSV_NODE_COLUMNS]
        for interface in sample["interfaces"] or [{}]:
            writer.writerow(node + [interface.get(c, "") for c in CSV_INTERFACE_COLUMNS])
    return out.getvalue()
