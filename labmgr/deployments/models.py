"""A deployment of a lab: a snapshot of its labfile, the compiled plan, and its steps."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labmgr.deployments.choices import ACTIVE_STATES, DeploymentStatus, StepStatus
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labplan.ops import Plan


class Deployment(models.Model):
    """One run of a lab. Status changes only through `deployment_transition`."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="deployments")
    # The lab's first host: where nodes without `host` run (docs/labfile.md, placement).
    host = models.ForeignKey(
        Host, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
    # Every host the lab's nodes are placed on, the first one included; each is sent the
    # same plan and applies its part (`DeploymentHost` keeps each one's result).
    hosts: models.ManyToManyField[Host, DeploymentHost] = models.ManyToManyField(
        Host, through="DeploymentHost", related_name="placed_deployments", blank=True
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
    # The index of each node and network the kernel names are made of, kept across
    # redeploys so that what stays keeps its names (labplan.compiler.Indexes).
    indexes = models.JSONField(default=dict, blank=True)
    # The plan as labplan objects, set (not stored) when it is compiled in this process,
    # so the control plane need not decode the JSON it has just written.
    compiled: Plan | None = None
    # Numbers the jobs sent to the agent (apply, destroy), so its steps of one job are
    # told apart from the same steps of the next.
    job = models.PositiveIntegerField(default=0)
    # When the last job was sent, and when the agent last reported on this deployment:
    # a deployment with no news for LABMGR_DEPLOY_TIMEOUT is failed, never left stuck.
    dispatched = models.DateTimeField(null=True, blank=True)
    heard = models.DateTimeField(null=True, blank=True)
    # The status it had when its host went silent; where it returns when the host is back.
    unknown_from = models.CharField(max_length=16, blank=True, default="")
    # The manifest digest each image reference of its nodes ran ({ref: "sha256:..."}),
    # merged over its hosts' apply results: a redeploy pins the same digests.
    images = models.JSONField(default=dict, blank=True)
    # The agent's last comparison of the kernel with the plan.
    # What live changes made differ from the labfile now (labplan.live.State's form:
    # impairments by interface, interfaces down, nodes stopped); empty after an apply.
    live = models.JSONField(default=dict, blank=True)
    drift = models.JSONField(null=True, blank=True)
    drift_checked = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # Two clicks on "deploy" cannot both win, whatever the database's locking.
            models.UniqueConstraint(
                fields=["lab"],
                condition=Q(status__in=sorted(ACTIVE_STATES)),
                name="deployments_deployment_one_active_per_lab",
            )
        ]

    def __str__(self) -> str:
        return f"{self.lab.name} #{self.pk} ({self.status})"


class DeploymentStep(models.Model):
    """One entry of a deployment's log, numbered in the order it happened."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="steps")
    seq = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    # The slug of the host whose agent reported it ("" for the control plane's own steps
    # and for agents that do not say): each host numbers its steps itself.
    host = models.CharField(max_length=50, blank=True, default="")
    message = models.TextField(blank=True, default="")
    # Set on steps the agent reported: its job, its own numbering within the job, the
    # operation's target and duration.
    job = models.PositiveIntegerField(null=True, blank=True)
    agent_seq = models.PositiveIntegerField(null=True, blank=True)
    total = models.PositiveIntegerField(null=True, blank=True)
    target = models.CharField(max_length=200, blank=True, default="")
    seconds = models.FloatField(null=True, blank=True)
    # Who asked for it, for the steps of a person's action (a live change): a username.
    actor = models.CharField(max_length=150, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment_id", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "seq"], name="deployments_step_unique_deployment_seq"
            ),
            # A step delivered twice is stored once.
            models.UniqueConstraint(
                fields=["deployment", "host", "job", "agent_seq", "status"],
                condition=Q(agent_seq__isnull=False),
                name="deployments_step_unique_host_report",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.name}: {self.status}"


class DeploymentNode(models.Model):
    """A node as its agent observed it once applied: pid, netns, interfaces with their MACs
    and addresses (`[{"ifname": "eth0", "mac": "...", "addresses": ["10.0.0.2/24"]}]`)."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=31)
    # The slug of the host it runs on.
    host = models.CharField(max_length=50, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    netns = models.CharField(max_length=15, blank=True, default="")
    interfaces = models.JSONField(default=list, blank=True)
    # What the node's user should know about how it started, as its agent said (e.g. why
    # the host's tree is read-only to it); "" for nothing.
    note = models.TextField(blank=True, default="")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "name"], name="deployments_node_unique_deployment_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"


class DeploymentHost(models.Model):
    """A host a deployment is placed on, and its agent's answer to the last job it was
    sent (`action`): `ok` is None while it is awaited. The deployment is RUNNING once
    every host's apply succeeded, DESTROYED once every host's destroy did."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="placements")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="placements")
    action = models.CharField(max_length=16, blank=True, default="")
    ok = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["deployment_id", "host__slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "host"], name="deployments_host_unique_deployment_host"
            )
        ]

    def __str__(self) -> str:
        state = "awaited" if self.ok is None else "ok" if self.ok else "failed"
        return f"{self.host}: {self.action} {state}"


class VniAllocation(models.Model):
    """A VXLAN network identifier held by an overlay network of a deployment that may
    still own kernel objects; released when the deployment is destroyed or cancelled."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="vnis")
    network = models.CharField(max_length=31)
    vni = models.PositiveIntegerField(unique=True)

    class Meta:
        ordering = ["vni"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "network"], name="deployments_vni_unique_deployment_network"
            )
        ]

    def __str__(self) -> str:
        return f"{self.network}: {self.vni}"


class ScenarioRun(models.Model):
    """One run of a scenario on a running deployment (docs/live.md): its steps as they
    were when it started, where it is, and each step's result, kept after it ends."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        STOPPED = "stopped", "Stopped"
        FINISHED = "finished", "Finished"

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="scenario_runs"
    )
    name = models.CharField(max_length=31)
    # [{"at": seconds, "action": {...}}], in order: the labfile's, or the ones sent.
    steps = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # Run time: `elapsed` seconds before the current stretch, which began at `resumed`
    # (None while paused or ended); the next step to run is `position`.
    elapsed = models.FloatField(default=0.0)
    resumed = models.DateTimeField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    # One per step run: {"index", "at", "action", "ok", "message", "time" (epoch), ...}.
    results = models.JSONField(default=list)
    reason = models.CharField(max_length=200, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.name} on #{self.deployment_id} ({self.state})"
