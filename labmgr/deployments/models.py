"""A deployment of a lab: a snapshot of its labfile, the compiled plan, and its steps."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labmgr.deployments.choices import DeploymentStatus, StepStatus
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab


class Deployment(models.Model):
    """One run of a lab. Status changes only through `deployment_transition`."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="deployments")
    host = models.ForeignKey(
        Host, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deployments"
    )
    status = models.CharField(
        max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING
    )
    # The deployment token ("lm" + base36 id) every kernel object name starts with.
    token = models.CharField(max_length=16, blank=True, default="")
    labfile = models.JSONField(default=dict, blank=True)
    plan = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.lab.name} #{self.pk} ({self.status})"


class DeploymentStep(models.Model):
    """One entry of a deployment's log, numbered in the order it happened."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="steps")
    seq = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    message = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment_id", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "seq"], name="deployments_step_unique_deployment_seq"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.name}: {self.status}"
