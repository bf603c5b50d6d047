"""Reads for the browser's pages: dashboard rows, a lab's page, its topology graph.

Everything here is plain data a template or an ES module renders; permissions come from
the labs and deployments selectors, so a page shows exactly what the API would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q

from labmgr.deployments.choices import ACTIVE_STATES, DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_list_visible
from labmgr.hosts.models import Host
from labmgr.hosts.selectors import host_list
from labmgr.labs import selectors as lab_selectors
from labmgr.labs.models import Lab
from labmgr.web.models import LabDraft
from labplan import fields
from labplan.errors import LabfileError

RECENT_DEPLOYMENTS = 8


@dataclass
class LabRow:
    lab: Lab
    document: dict[str, Any]
    deployment: Deployment | None
    has_draft: bool = False

    @property
    def status(self) -> str:
        """The latest deployment's status, or "" for a lab never deployed."""
        return self.deployment.status if self.deployment else ""

    @property
    def nodes(self) -> int:
        return len(self.document.get("nodes") or {})

    @property
    def networks(self) -> int:
        return len(self.document.get("networks") or {})


@dataclass
class HostRow:
    host: Host
    deployments: int
    capabilities: list[str] = field(default_factory=list)

    @property
    def load(self) -> float | None:
        """The 1-minute load average the agent reported, when it reports one."""
        value = self.host.facts.get("loadavg")
        if isinstance(value, list | tuple) and value:
            value = value[0]
        return float(value) if isinstance(value, int | float) else None


def lab_document(lab: Lab) -> dict[str, Any]:
    """The lab's normalised labfile as a dict, from the cached document."""
    try:
        document = json.loads(lab.document or "{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def attachment_options() -> dict[str, list[str]]:
    """Each network driver's attachment options, from labplan's option table: the editor
    offers a node's address, IPv6 address, access VLAN and trunk only where its network's
    driver takes them."""
    taken: dict[str, list[str]] = {}
    for option in fields.ATTACHMENT.fields:
        for driver in sorted(option.drivers or ()):
            taken.setdefault(driver, []).append(option.name)
    return taken


def latest_deployment(lab: Lab) -> Deployment | None:
    return lab.deployments.select_related("host").order_by("-created", "-id").first()


def dashboard_labs(*, user: User) -> list[LabRow]:
    labs = list(lab_selectors.lab_list_visible(user=user))
    latest: dict[int, Deployment] = {}
    recent = Deployment.objects.filter(lab__in=[lab.pk for lab in labs]).order_by("-created", "-id")
    for deployment in recent.select_related("host"):
        latest.setdefault(deployment.lab_id, deployment)
    drafted = set(
        LabDraft.objects.filter(owner=user, lab__isnull=False).values_list("lab_id", flat=True)
    )
    return [LabRow(lab, lab_document(lab), latest.get(lab.pk), lab.pk in drafted) for lab in labs]


def dashboard_new_drafts(*, user: User) -> list[LabDraft]:
    """Drafts of labs the user has not managed to create yet."""
    return list(LabDraft.objects.filter(owner=user, lab__isnull=True))


def dashboard_hosts(*, slug: str | None = None) -> list[HostRow]:
    """Every host (or the one named `slug`) with its active deployments and facts."""
    hosts = host_list() if slug is None else host_list().filter(slug=slug)
    hosts = hosts.annotate(
        live=Count("deployments", filter=Q(deployments__status__in=sorted(ACTIVE_STATES)))
    )
    return [HostRow(h, h.live, host_capabilities(h.facts)) for h in hosts]


def host_capabilities(facts: dict[str, Any]) -> list[str]:
    """A short list of what the host's kernel can do, as the agent reported it."""
    found = [*facts.get("link_kinds", ()), *facts.get("qdiscs", ())]
    if facts.get("cgroup_mode"):
        found.append(f"cgroup {facts['cgroup_mode']}")
    if facts.get("user_namespaces"):
        found.append("user namespaces")
    if facts.get("nftables"):
        found.append("nftables")
    return [str(item) for item in found]


def recent_deployments(*, user: User) -> list[Deployment]:
    return list(deployment_list_visible(user=user)[:RECENT_DEPLOYMENTS])


def dashboard_status(*, user: User) -> dict[str, Any]:
    """What the dashboard refreshes while it is open: each lab's and each host's status."""
    return {
        "labs": {
            str(row.lab.pk): {"status": row.status, "label": status_label(row.status)}
            for row in dashboard_labs(user=user)
        },
        "hosts": {
            h.host.slug: {"status": h.host.status, "deployments": h.deployments, "load": h.load}
            for h in dashboard_hosts()
        },
    }


def status_label(status: str) -> str:
    if not status:
        return "Not deployed"
    return str(DeploymentStatus(status).label) if status in DeploymentStatus.values else status


def lab_plan_preview(*, lab: Lab) -> tuple[list[str], str]:
    """The plan's shell commands, or an explanation of why there is no plan to show."""
    try:
        return lab_selectors.lab_plan(lab=lab)["commands"], ""
    except LabfileError as exc:
        return [], "This lab cannot be planned yet: " + "; ".join(str(e) for e in exc.errors)


def node_states(*, lab: Lab, deployment: Deployment | None) -> dict[str, str]:
    """Each node's state as the agent last reported it: "running" when the agent observed
    its process, "missing" when a running deployment lacks it, else the deployment's
    status ("stopped" when the lab has no deployment that may hold it)."""
    names = list((lab_document(lab).get("nodes") or {}).keys())
    if deployment is None or deployment.status not in ACTIVE_STATES:
        gone = (
            "failed" if deployment and deployment.status == DeploymentStatus.FAILED else "stopped"
        )
        return dict.fromkeys(names, gone)
    observed = {n.name: n for n in deployment.nodes.all()}
    states = {}
    for name in names:
        node = observed.get(name)
        if deployment.status == DeploymentStatus.RUNNING:
            states[name] = "running" if node is not None and node.pid else "missing"
        else:
            states[name] = str(deployment.status)
    return states


def node_rows(*, lab: Lab, deployment: Deployment | None) -> list[tuple[str, str, str, str]]:
    """Each node of the lab: name, state (as `node_states`), what its agent said its user
    should know about how it started ("" for nothing, or when it is not running), and the
    image it runs ("" for a node of the host's tree or a directory), with the digest the
    deployment ran when it recorded one."""
    states = node_states(lab=lab, deployment=deployment)
    notes: dict[str, str] = {}
    if deployment is not None and deployment.status in ACTIVE_STATES:
        notes = dict(deployment.nodes.exclude(note="").values_list("name", "note"))
    nodes = lab_document(lab).get("nodes") or {}
    ran = (
        deployment.images if deployment is not None and isinstance(deployment.images, dict) else {}
    )
    return [
        (name, state, notes.get(name, ""), _image_label(nodes.get(name) or {}, ran))
        for name, state in states.items()
    ]


def _image_label(node: dict[str, Any], ran: dict[str, str]) -> str:
    image = node.get("image")
    if not isinstance(image, str) or not image:
        return ""
    digest = ran.get(image)
    return f"{image} ({digest[:19]}…)" if isinstance(digest, str) and digest else image


def topology(*, lab: Lab, deployment: Deployment | None) -> dict[str, Any]:
    """The graph the topology view draws: nodes, networks (with their driver), one
    `links` edge per attachment (node to network: its interface, IPv4 and IPv6 addresses
    and VLANs, also listed as the node's `ports`) and one `peer_links` edge per
    point-to-point link (node to node, each end's interface, addresses and impairments),
    with what the agent observed of each interface; a link of one endpoint (a dummy, a
    veth into the host, a tunnel) is no edge but one of its node's `outside` links."""
    document = lab_document(lab)
    states = node_states(lab=lab, deployment=deployment)
    observed = {n.name: n for n in deployment.nodes.all()} if deployment else {}
    placed = deployment.host.slug if deployment and deployment.host else ""
    nodes = []
    links = []
    outside = outside_links(document)
    for name, node in (document.get("nodes") or {}).items():
        seen = observed.get(name)
        ports = [
            {
                "node": name,
                "network": network,
                "ifname": attachment.get("ifname", ""),
                "ipv4": attachment.get("ipv4", ""),
                "ipv6": attachment.get("ipv6", ""),
                "mac": attachment.get("mac", ""),
                "vlans": port_vlans(attachment),
            }
            for network, attachment in (node.get("networks") or {}).items()
        ]
        nodes.append(
            {
                "name": name,
                "state": states.get(name, "stopped"),
                "host": node.get("host") or placed,
                "pid": seen.pid if seen else None,
                "limits": node.get("limits") or {},
                "command": node.get("command") or [],
                "interfaces": seen.interfaces if seen else [],
                "ports": ports,
                "outside": [link for link in outside if link["node"] == name],
            }
        )
        links.extend(ports)
    networks = [
        {
            "name": name,
            "driver": net.get("driver", ""),
            "subnet": net.get("subnet", ""),
            "subnet6": net.get("subnet6", ""),
            "gateway6": net.get("gateway6", ""),
            "vlan_filtering": net.get("vlan_filtering") is True,
            "vlan_id": net.get("id"),
        }
        for name, net in (document.get("networks") or {}).items()
    ]
    return {
        "nodes": nodes,
        "networks": networks,
        "links": links,
        "peer_links": peer_links(document),
        "outside_links": outside,
    }


def outside_links(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The labfile's links of one endpoint, in its order: the node's interface and
    addresses, and what is on the other side in words."""
    found = []
    for link in document.get("links") or []:
        endpoints = [str(e) for e in link.get("endpoints") or []]
        kind = link.get("type", "veth")
        if kind == "veth" or len(endpoints) != 1:
            continue
        node, _, ifname = endpoints[0].partition(":")
        if kind == "host":
            name = link.get("host_ifname")
            far = f"the host, as {name}" if name else "the host"
        elif kind == "network":
            far = f"one more port on {link.get('network')}"
        elif kind == "vxlan":
            far = f"VXLAN {link.get('vni')} to {link.get('remote')}:{link.get('port', 4789)}"
        else:
            far = f"a {kind} interface"
        addresses = [(link.get(family) or [""])[0] for family in ("ipv4", "ipv6")]
        found.append(
            {
                "node": node,
                "ifname": ifname,
                "type": kind,
                "far": far,
                "name": endpoints[0],
                "addresses": " ".join(a for a in addresses if a),
                "mtu": link.get("mtu"),
            }
        )
    return found


def port_vlans(attachment: dict[str, Any]) -> str:
    """A port's VLANs as the topology says them: "vlan 10" (access, untagged), "trunk
    10,20" (tagged), both, or "" for a port in no VLAN of its own."""
    words = []
    if attachment.get("vlan") is not None:
        words.append(f"vlan {attachment['vlan']}")
    if attachment.get("vlans"):
        words.append("trunk " + ",".join(str(v) for v in attachment["vlans"]))
    return ", ".join(words)


def peer_links(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The labfile's point-to-point links, in its order: each end (node, ifname, its
    addresses and the impairments of what it sends) and the MTU."""
    found = []
    for index, link in enumerate(document.get("links") or []):
        endpoints = [str(e) for e in link.get("endpoints") or []]
        if len(endpoints) != 2:
            continue
        impairments = link.get("impairments") or {}
        per_end = any(":" in key for key in impairments)
        ends = []
        for position, endpoint in enumerate(endpoints):
            node, _, ifname = endpoint.partition(":")
            ends.append(
                {
                    "node": node,
                    "ifname": ifname,
                    "ipv4": (link.get("ipv4") or ["", ""])[position],
                    "ipv6": (link.get("ipv6") or ["", ""])[position],
                    "impairments": (impairments.get(endpoint) if per_end else impairments) or {},
                }
            )
        addresses = [" ".join(a for a in (e["ipv4"], e["ipv6"]) if a) for e in ends]
        found.append(
            {
                "id": f"plink:{index}",
                "ends": ends,
                "mtu": link.get("mtu"),
                "name": " - ".join(endpoints),
                "addresses": " - ".join(addresses) if any(addresses) else "",
            }
        )
    return found
