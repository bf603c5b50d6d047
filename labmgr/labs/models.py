"""A lab as rows: the lab, its networks, its nodes, each node's attachments and the
point-to-point links between nodes.

Rows hold the normalised labfile's values (every default applied, addresses resolved),
written and read only through `labmgr.labs.spec`. An empty string or NULL in an option
column means the option does not apply to that driver, so it is absent from the labfile.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from labmgr.labs.choices import NetworkDriver


class Lab(models.Model):
    """A user's lab definition; its name is the labfile's name, unique per owner."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labs"
    )
    name = models.CharField(max_length=40)
    description = models.TextField(blank=True, default="")
    shared_with = models.ManyToManyField(Group, blank=True, related_name="shared_labs")
    # The normalised labfile of the rows below as JSON text, rewritten by the services on
    # every change, so that listing labs needs no validation (the target: 1,000 labs
    # listed under 200 ms). Text, not JSONField: PostgreSQL's jsonb would lose the key
    # order of docs/labfile.md.
    document = models.TextField(blank=True, default="", editable=False)
    # The labfile version of the rows: 1 unless the lab uses what only labfile 2 says
    # (links, an attachment's impairments, duplicate/corrupt/reorder), as labplan decides.
    version = models.PositiveSmallIntegerField(default=1, editable=False)
    # The labfile's `scenarios` as its document writes them (labplan.scenarios), JSON
    # text for the same reason as `document`: name -> steps.
    scenarios = models.TextField(blank=True, default="", editable=False)
    # The labfile's `volumes` (labfile 2): name -> {"size": "256M"}.
    volumes = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="labs_lab_unique_owner_name")
        ]
        # A page of the list is read in this order: walked, not sorted (with every lab's
        # document) for each request.
        indexes = [models.Index(fields=["name", "id"], name="labs_lab_name_id")]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner})"

    def groups(self) -> list[Group]:
        """The groups the lab is shared with: those a list prefetched into
        `shared_groups` (a plain list; a related manager per lab costs more than the
        query), else read now."""
        prefetched: list[Group] | None = getattr(self, "shared_groups", None)
        return prefetched if prefetched is not None else list(self.shared_with.all())


class Network(models.Model):
    """One network of a lab, with the options of its driver."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="networks")
    name = models.CharField(max_length=31)
    driver = models.CharField(max_length=16, choices=NetworkDriver.choices)
    subnet = models.CharField(max_length=18, blank=True, default="")
    subnet6 = models.CharField(max_length=43, blank=True, default="")
    # An address, "none" (no gateway) or "" (the driver has no gateway).
    gateway = models.CharField(max_length=15, blank=True, default="")
    gateway6 = models.CharField(max_length=39, blank=True, default="")  # "": none
    internal = models.BooleanField(null=True, blank=True)
    mtu = models.PositiveIntegerField(null=True, blank=True)
    # The network's impairments (labfile 1: `shaping`) as exported: {"rate": "10mbit",
    # "delay": "20ms", "jitter": "5ms", "loss": "0.5%", "duplicate": "1%", ...}.
    shaping = models.JSONField(null=True, blank=True)
    parent = models.CharField(max_length=64, blank=True, default="")
    mode = models.CharField(max_length=16, blank=True, default="")
    vni = models.PositiveIntegerField(null=True, blank=True)
    vlan_filtering = models.BooleanField(null=True, blank=True)
    # A vlan network's 802.1Q id (the labfile's `id`).
    vlan_id = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["lab_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "name"], name="labs_network_unique_lab_name")
        ]

    def __str__(self) -> str:
        return f"{self.lab.name}/{self.name}"


class Node(models.Model):
    """One container of a lab: its process, limits, namespaces and routes."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=31)
    hostname = models.CharField(max_length=64)
    host = models.CharField(max_length=64, blank=True, default="")
    # A node runs the host's tree (or a directory: `rootfs`) or an OCI image (`image`, a
    # canonical reference; `rootfs` then ""). On an image node NULL `command` and
    # `entrypoint` and "" `workdir` and `user` mean the image's own.
    rootfs = models.CharField(max_length=4096, default="host", blank=True)
    image = models.CharField(max_length=512, blank=True, default="")
    entrypoint = models.JSONField(null=True, blank=True)
    command = models.JSONField(default=list, null=True, blank=True)
    workdir = models.CharField(max_length=4096, default="/", blank=True)
    user = models.CharField(max_length=64, blank=True, default="")
    network_mode = models.CharField(max_length=48, blank=True, default="")  # "container:NODE"
    sysctls = models.JSONField(default=dict, blank=True)  # {"net.ipv4.ip_forward": "1"}
    # [{"volume": "data", "path": "/var/lib/db", "readonly": false}, ...] (labfile 2)
    mounts = models.JSONField(default=list, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    # The labfile's `limits` mapping as exported ({"memory": "256M", "pids": 128, ...}).
    limits = models.JSONField(default=dict, blank=True)
    namespaces = models.JSONField(default=dict, blank=True)
    privileged = models.BooleanField(default=False)
    routes = models.JSONField(default=list, blank=True)
    # Commands run in the node once the lab is up, each a list of words (labfile 2).
    exec = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["lab_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "name"], name="labs_node_unique_lab_name")
        ]

    def __str__(self) -> str:
        return f"{self.lab.name}/{self.name}"


class Attachment(models.Model):
    """A node's membership of a network of the same lab, in the node's listing order."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="attachments")
    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="attachments")
    position = models.PositiveSmallIntegerField()
    ipv4 = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    ifname = models.CharField(max_length=15, blank=True, default="")
    mac = models.CharField(max_length=17, blank=True, default="")
    ipv6 = models.CharField(max_length=39, blank=True, default="")
    vlan = models.PositiveIntegerField(null=True, blank=True)  # an access port's id
    vlans = models.JSONField(null=True, blank=True)  # a trunk's ids
    # This attachment's own impairments, as exported; NULL: the network's.
    impairments = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["node_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["node", "network"], name="labs_attachment_unique_node_network"
            ),
            models.UniqueConstraint(
                fields=["node", "position"], name="labs_attachment_unique_node_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.node} @ {self.network.name}"


class Link(models.Model):
    """A point-to-point link of a lab (labfile 2 `links`): a veth pair between an
    interface of node A and one of node B, in the labfile's order. Each end holds its
    address in interface form ("10.0.12.1/30", "" for none) and the impairments of what
    it sends, as exported (NULL for none).

    A link of one endpoint (`type` dummy, host or vxlan) has node A's interface alone:
    no node B, the host side's addresses of a host link in B's columns, and the keys of
    its type (host_ifname, remote, vni, port, parent) in `options`."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="links")
    position = models.PositiveSmallIntegerField()
    node_a = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="links_as_a")
    ifname_a = models.CharField(max_length=15)
    ipv4_a = models.CharField(max_length=18, blank=True, default="")
    ipv6_a = models.CharField(max_length=43, blank=True, default="")
    impairments_a = models.JSONField(null=True, blank=True)
    node_b = models.ForeignKey(
        Node, on_delete=models.CASCADE, related_name="links_as_b", null=True, blank=True
    )
    ifname_b = models.CharField(max_length=15, blank=True, default="")
    ipv4_b = models.CharField(max_length=18, blank=True, default="")
    ipv6_b = models.CharField(max_length=43, blank=True, default="")
    impairments_b = models.JSONField(null=True, blank=True)
    mtu = models.PositiveIntegerField(default=1500)
    type = models.CharField(max_length=8, default="veth")
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["lab_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["lab", "position"], name="labs_link_unique_lab_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lab.name}/{self.endpoint_a} - {self.endpoint_b}"

    @property
    def endpoint_a(self) -> str:
        return f"{self.node_a.name}:{self.ifname_a}"

    @property
    def endpoint_b(self) -> str:
        """The far end: node B's interface, or what a link of one endpoint leads to."""
        if self.node_b is None:
            far = {"host": "the host", "vxlan": f"vxlan to {self.options.get('remote')}"}
            return far.get(self.type, self.type)
        return f"{self.node_b.name}:{self.ifname_b}"
