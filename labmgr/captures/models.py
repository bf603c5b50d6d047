"""A packet capture on one interface of a node of a deployment, and its pcap once ended."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labmgr.deployments.models import Deployment


class CaptureState(models.TextChoices):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


ACTIVE_STATES = frozenset({CaptureState.STARTING, CaptureState.RUNNING, CaptureState.STOPPING})


class Capture(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="captures")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="captures"
    )
    # The agent's name for it (its file, its Redis key): random, so no one guesses a key.
    key = models.CharField(max_length=32, unique=True, editable=False)
    node = models.CharField(max_length=64)
    interface = models.CharField(max_length=15)
    filter = models.TextField(blank=True, default="")
    max_bytes = models.PositiveBigIntegerField()
    max_seconds = models.PositiveIntegerField()
    state = models.CharField(
        max_length=16, choices=CaptureState.choices, default=CaptureState.STARTING
    )
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    # Why it ended, in words: stopped on request, a bound reached, the node stopped, ...
    reason = models.CharField(max_length=500, blank=True, default="")
    # The pcap file; a few MiB at most, deleted with the capture (and its deployment).
    pcap = models.BinaryField(null=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"capture {self.pk} of {self.node}:{self.interface}"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def filename(self) -> str:
        stamp = self.created.strftime("%Y%m%d-%H%M%S")
        return f"{self.deployment.lab.name}-{self.node}-{self.interface}-{stamp}.pcap"
