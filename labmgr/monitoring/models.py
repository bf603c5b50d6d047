"""A metrics sample of one node at one time, raw (1 s) or averaged (60 s)."""

from __future__ import annotations

from django.db import models

from labmgr.deployments.models import Deployment

RAW = 1  # seconds a raw sample stands for
MINUTE = 60  # seconds a downsampled sample stands for


class MetricSample(models.Model):
    """Per node: CPU %, memory, pids and IO bytes; per interface (in `interfaces`): rx/tx
    bytes, packets, drops and rates, as the agent's sample has them (docs/messages.md)."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="metric_samples"
    )
    node = models.CharField(max_length=31)
    t = models.DateTimeField()
    resolution = models.PositiveSmallIntegerField(default=RAW)
    cpu_percent = models.FloatField(default=0)
    memory_current = models.PositiveBigIntegerField(default=0)
    # NULL: no memory limit.
    memory_max = models.PositiveBigIntegerField(null=True, blank=True)
    pids = models.PositiveIntegerField(default=0)
    io_read_bytes = models.PositiveBigIntegerField(default=0)
    io_write_bytes = models.PositiveBigIntegerField(default=0)
    interfaces = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["t", "node"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "node", "resolution", "t"],
                name="monitoring_sample_unique_node_time",
            )
        ]
        indexes = [models.Index(fields=["resolution", "t"], name="monitoring_resolution_t")]

    def __str__(self) -> str:
        return f"{self.node} @ {self.t:%H:%M:%S}"
