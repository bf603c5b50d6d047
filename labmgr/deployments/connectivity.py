"""The connectivity check of a running deployment: every node pings every address of
every other node, IPv4 and IPv6, on its networks and its point-to-point links, and each
answer is set beside what the lab's networks and links lead to expect.

Expected reachable means: the source is attached to the network the address lives on,
and that network's driver lets its members talk (bridge, overlay, ipvlan, macvlan in
`bridge` mode), or the source is the other end of the link the address is on.
Anything else (another network, a host or none network, macvlan private / vepa /
passthru) is expected unreachable; a router node that forwards between networks
therefore shows as reachable against expectation, which is what the check is for.
Pings run through the agent's exec path, one exec per source node, so the check costs
one agent job per node rather than one per probe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from django.contrib.auth.models import User

from labmgr.deployments import lifecycle
from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.dispatch import CommandFailed
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.labs import selectors as lab_selectors
from labplan import labfile as labfile_module
from labplan.drivers import DRIVERS
from labplan.model import Labfile, Network, Node

# Pairs grow with the square of the nodes: 20 nodes are 380 pairs, about as many as a
# matrix on a screen shows and the agent pings in a request's time.
MAX_NODES = 20
# Each exec holds the pings of one source, run side by side; each waits one second.
EXEC_TIMEOUT = 10.0
# The pings of one source run in parallel, each printing "ADDRESS EXIT" on one line (one
# short write each, so lines never interleave). No shell word is built from lab data: the
# addresses are the script's positional arguments.
PING_SCRIPT = 'for addr do (ping -c1 -W1 "$addr" >/dev/null 2>&1; echo "$addr $?") & done; wait'
COMMAND_NOT_FOUND = 127


class Probe(TypedDict):
    src: str
    dst: str
    address: str
    network: str
    reachable: bool
    expected: bool


class Report(TypedDict):
    deployment: int
    nodes: list[str]
    probes: list[Probe]


def deployment_connectivity(*, deployment: Deployment, actor: User) -> Report:
    """Ping every address of every other node from each node of the running deployment
    and return one probe per (source, destination, address), in sorted node order."""
    _require_checkable(deployment, actor)
    lab = labfile_module.validate(deployment.labfile)
    if len(lab.nodes) > MAX_NODES:
        raise ApplicationError.for_field(
            "nodes",
            f"The lab has {len(lab.nodes)} nodes; the connectivity check pings every pair "
            f"and is limited to {MAX_NODES} nodes.",
        )
    probes: list[Probe] = []
    for source in lab.nodes:
        targets = list(_targets(lab, source))
        answers = _ping_from(deployment, actor, source.name, [t[2] for t in targets])
        for dst, where, address, expected in targets:
            probes.append(
                {
                    "src": source.name,
                    "dst": dst,
                    "address": address,
                    "network": where,
                    "reachable": answers.get(address, False),
                    "expected": expected,
                }
            )
    return {
        "deployment": deployment.pk,
        "nodes": [node.name for node in lab.nodes],
        "probes": probes,
    }


def expected_reachable(source: Node, network: Network) -> bool:
    """Whether `source` should reach a member's address on `network`."""
    attached = any(a.network == network.name for a in source.networks)
    return attached and DRIVERS[network.driver].members_reach_each_other(network)


# --- helpers ---------------------------------------------------------------------------


def _require_checkable(deployment: Deployment, actor: User) -> None:
    # Checked before anything is pinged, so a refusal tells nothing about the lab.
    if not lab_selectors.lab_can_change(user=actor, lab=deployment.lab):
        raise NotAllowed("This lab is shared with you to read; only its owner may run it.")
    if deployment.status != DeploymentStatus.RUNNING:
        raise Conflict.for_field(
            "status",
            "Connectivity is checked only in a running deployment; "
            f"this one is {deployment.status}.",
        )


def _targets(lab: Labfile, source: Node) -> Iterable[tuple[str, str, str, bool]]:
    """(destination, where, address, expected) of every address of the other nodes: on
    a network (`where` its name; a network link's too) or a link (`where` its ends,
    "r1:eth1-r2:eth1")."""
    networks = {network.name: network for network in lab.networks}
    for node in lab.nodes:
        if node.name == source.name:
            continue
        for attachment in node.networks:
            network = networks[attachment.network]
            expected = expected_reachable(source, network)
            for address in (attachment.ipv4, attachment.ipv6):
                if address is not None:
                    yield node.name, network.name, address, expected
    for port in lab.ports:
        # A network link's address is one more of its node's on the bridge.
        if port.network is None or port.end.node == source.name:
            continue
        expected = expected_reachable(source, networks[port.network])
        for address in (port.end.ipv4, port.end.ipv6):
            if address is not None:
                yield port.end.node, port.network, address.partition("/")[0], expected
    for link in lab.links:
        where = "-".join(end.endpoint for end in link.ends)
        ends = {end.node for end in link.ends}
        for end in link.ends:
            if end.node == source.name:
                continue
            for address in (end.ipv4, end.ipv6):
                if address is not None:
                    yield end.node, where, address.partition("/")[0], source.name in ends


def _ping_from(
    deployment: Deployment, actor: User, node: str, addresses: list[str]
) -> dict[str, bool]:
    """Whether each address answered one ping from `node`."""
    if not addresses:
        return {}
    outcome = lifecycle.deployment_exec(
        deployment=deployment,
        actor=actor,
        node=node,
        argv=["sh", "-c", PING_SCRIPT, "connectivity", *sorted(set(addresses))],
        timeout=EXEC_TIMEOUT,
    )
    exits = _parse_exits(outcome["stdout"])
    if COMMAND_NOT_FOUND in exits.values() or (outcome["exit"] != 0 and not exits):
        raise CommandFailed(f"Node {node} has no ping command, so its connectivity is unknown.")
    # An address missing from the output did not answer in time.
    return {address: exits.get(address) == 0 for address in addresses}


def _parse_exits(stdout: str) -> dict[str, int]:
    exits: dict[str, int] = {}
    for line in stdout.splitlines():
        address, _, code = line.strip().rpartition(" ")
        if address and code.isdigit():
            exits[address] = int(code)
    return exits
