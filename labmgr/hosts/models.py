"""A host: a machine with an agent listening on its own Celery queue."""

from __future__ import annotations

from django.db import models

from labmgr.hosts.choices import HostStatus
from labplan.messages import host_queue


class Host(models.Model):
    """A target machine; `facts` is what its agent last reported about its kernel."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    status = models.CharField(max_length=16, choices=HostStatus.choices, default=HostStatus.UNKNOWN)
    facts = models.JSONField(default=dict, blank=True)
    cpus = models.PositiveIntegerField(default=0, help_text="CPU cores the host offers to labs")
    memory = models.PositiveBigIntegerField(default=0, help_text="bytes the host offers to labs")
    pids = models.PositiveIntegerField(default=0, help_text="processes the host offers to labs")
    last_seen = models.DateTimeField(null=True, blank=True)
    # The images its store holds (labplan.messages.ImageFact each), as its agent last
    # said (heartbeat or images report), and the outcome of the last image action an
    # admin asked for ("" before any).
    images = models.JSONField(default=list, blank=True)
    images_status = models.TextField(blank=True, default="")
    images_ok = models.BooleanField(null=True, blank=True)
    images_changed = models.DateTimeField(null=True, blank=True)
    # The address other hosts reach this one at for VXLAN; set by an admin, it overrides
    # the one the agent reports (`facts["underlay"]`, from LABMGR_AGENT_UNDERLAY).
    underlay = models.GenericIPAddressField(
        protocol="IPv4",
        null=True,
        blank=True,
        help_text="IPv4 address the other hosts reach this one at for overlay networks "
        "(VXLAN); empty: the one its agent reports",
    )
    # The HMAC key (64 hex digits) its agent and the control plane sign messages with
    # (labplan.envelope); made when the host is registered. `next_key` is a rotation the
    # agent has not confirmed yet: its reports may be signed with either meanwhile.
    key = models.CharField(max_length=64, blank=True, editable=False)
    next_key = models.CharField(max_length=64, blank=True, editable=False)
    key_rotated = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def underlay_address(self) -> str | None:
        """The VXLAN underlay address: the admin's, else the agent's, else none."""
        reported = (self.facts or {}).get("underlay")
        return self.underlay or (reported if isinstance(reported, str) and reported else None)

    @property
    def queue(self) -> str:
        """The Celery queue this host's agent consumes."""
        return host_queue(self.slug)


class SeenMessage(models.Model):
    """A signed message an agent sent that the control plane acted on, kept while the
    message would still be fresh: the same message again is a replay, and refused."""

    id = models.CharField(primary_key=True, max_length=64)
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="seen_messages")
    expires = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["expires"]

    def __str__(self) -> str:
        return f"{self.id} from {self.host_id}"
