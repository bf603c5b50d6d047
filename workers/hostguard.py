"""What an agent keeps true of its host as a whole, beside each deployment's own objects:
no plan routes a subnet that shadows the host's routes, its addresses or another lab's;
VXLAN reaches the host only from the peers its overlays name; and when labmgr is the one
who turned IPv4 (or IPv6) forwarding on, the host forwards nothing but its labs' traffic,
and forwarding goes off again with the last lab that needed it. Turning IPv6 forwarding on
sets every link's own switch too; the host's own links get theirs back, so they go on
taking router advertisements as before.

Everything is recomputed from the journal (every deployment's plan for this host) on each
apply and destroy, so nothing is counted and a crash between two steps converges on the
next job. Which value forwarding had before labmgr turned it on is kept in the agent's
data directory (`forwarding.json`, 0600), so the last destroy or a sweep restores it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from labplan import ops, subnets
from workers.driver import Driver, HostRules
from workers.journal import Journal

STATE_FILE = "forwarding.json"
# The state file's key for each IP version labmgr turned forwarding on for.
KEYS = {4: "ip_forward", 6: "ip6_forward"}


@dataclass(frozen=True)
class Journaled:
    """What one journaled deployment holds host-wide on this host."""

    token: str
    routed: tuple[subnets.IPNetwork, ...]
    nat: bool
    nat6: bool
    vxlan_ports: tuple[int, ...]
    vxlan_peers: tuple[str, ...]


def journaled(journal: Journal, exclude: str | None = None) -> list[Journaled]:
    """Every deployment of the journal but `exclude`, read from its own plan."""
    found = []
    for token in journal.tokens():
        record = journal.read(token) if token != exclude else None
        plan = record.header.get("plan") if record is not None else None
        if record is not None and isinstance(plan, Mapping):
            found.append(_summary(token, plan, str(record.header.get("host", ""))))
    return found


def _summary(token: str, plan: Mapping[str, object], host: str) -> Journaled:
    """A journaled plan (written by this agent after decoding it) read without decoding it
    again: only the kinds of op that matter host-wide are looked at."""
    nat = {4: False, 6: False}
    ports: list[int] = []
    peers: list[str] = []
    for op in _host_ops(plan, host):
        kind = op.get("op")
        if kind == "set_nat":
            nat[6 if ":" in str(op.get("subnet")) else 4] = True
        elif kind == "create_vxlan" and isinstance(op.get("port"), int):
            ports.append(int(str(op["port"])))
        elif kind == "add_fdb_entry" and isinstance(op.get("dst"), str):
            peers.append(str(op["dst"]))
    routed = subnets.routed_subnets_of_dict(plan, host)
    return Journaled(token, routed, nat[4], nat[6], tuple(ports), tuple(peers))


def _host_ops(plan: Mapping[str, object], host: str) -> Iterable[Mapping[str, object]]:
    hosts = plan.get("hosts")
    for part in hosts if isinstance(hosts, list) else ():
        if isinstance(part, Mapping) and part.get("host") == host:
            items = part.get("ops")
            yield from (
                op for op in (items if isinstance(items, list) else ()) if isinstance(op, Mapping)
            )


def conflicts(driver: Driver, plan: ops.HostPlan, journal: Journal) -> list[str]:
    """Why the subnets `plan` routes cannot be routed on this host: each one that
    overlaps a route (but the default one) or an address of the host, or a subnet another
    journaled deployment routes here. Empty when the plan may go ahead."""
    wanted = subnets.routed_subnets(plan)
    if not wanted:
        return []
    routes, addresses = driver.host_network()
    others = journaled(journal, exclude=plan.deployment)
    problems = []
    for subnet in wanted:
        if problem := subnets.host_conflict(subnet, routes, addresses):
            problems.append(problem)
            continue
        for other in others:
            if clash := subnets.overlapping(subnet, other.routed):
                problems.append(
                    f"{subnet} overlaps {clash}, routed here by deployment {other.token}"
                )
                break
    return problems


def network_facts(driver: Driver) -> dict[str, list[dict[str, str]]]:
    """The host's routes and addresses, labmgr's own links left out, as the heartbeat
    reports them: the control plane refuses at deploy a lab whose routed subnet would
    shadow one of them."""
    routes, addresses = driver.host_network()
    return {
        "routes": [{"dst": r.dst, "dev": r.dev, "via": r.via} for r in routes],
        "addresses": [{"address": a.address, "dev": a.dev} for a in addresses],
    }


class HostGuard:
    """The host-wide rules and the forwarding switches of one agent's host."""

    def __init__(self, data_dir: Path) -> None:
        self.state = data_dir / STATE_FILE

    def sync(self, driver: Driver, journal: Journal) -> None:
        """Make the host-wide rules and forwarding say what the journaled deployments need."""
        parts = journaled(journal)
        needs = {4: any(p.nat for p in parts), 6: any(p.nat6 for p in parts)}
        state = self._read()
        taken = False
        for version, key in KEYS.items():
            if needs[version] and key not in state and not driver.ip_forward(version):
                state[key] = 0 if version == 4 else {"links": driver.links_forwarding6()}
                taken = True
        if taken:
            self._write(state)  # first: a crash after turning it on still restores it
        owned = {version: key in state for version, key in KEYS.items()}
        ports = tuple(sorted({port for p in parts for port in p.vxlan_ports}))
        peers = tuple(sorted({peer for p in parts for peer in p.vxlan_peers}))
        rules = HostRules(
            vxlan_ports=ports,
            vxlan_peers=peers if ports else (),
            forward_guard=owned[4] and needs[4],
            forward_guard6=owned[6] and needs[6],
        )
        released = [v for v in KEYS if owned[v] and not needs[v]]
        for version in released:
            # The last lab that needed forwarding is gone: off again, then the guard goes.
            driver.set_ip_forward(False, version)
            if version == 6:
                driver.set_links_forwarding6(self._links6(state))
            del state[KEYS[version]]
        if released:
            self._write(state)
        # Written whole each time (one `nft` where there are rules, a netlink question
        # where there are none): nothing to trust but the journal.
        driver.set_host_rules(rules)
        guarded = {4: rules.forward_guard, 6: rules.forward_guard6}
        for version in KEYS:
            if guarded[version] and not driver.ip_forward(version):
                driver.set_ip_forward(True, version)  # only once the guard is in place
                if version == 6:
                    driver.set_links_forwarding6(self._links6(state))

    @staticmethod
    def _links6(state: dict[str, object]) -> dict[str, bool]:
        saved = state.get(KEYS[6])
        links = saved.get("links") if isinstance(saved, dict) else None
        if not isinstance(links, dict):
            return {}
        return {str(name): on for name, on in links.items() if isinstance(on, bool)}

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.state.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {KEYS[4]: 0}  # unreadable: labmgr turned IPv4 forwarding on, as before
        return data if isinstance(data, dict) else {KEYS[4]: 0}

    def _write(self, state: dict[str, object]) -> None:
        if not state:
            self.state.unlink(missing_ok=True)
            return
        self.state.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump(state, stream)
