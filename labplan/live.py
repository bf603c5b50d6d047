"""Live changes of a running lab: the grammar of one action (the body of the API's
`live` call, a command line's words, a scenario's step), what it touches in the lab, and
the changes an agent makes for it; the lab's live state is what differs from its labfile,
so a restore knows where to go back to. Pure: no I/O.

Actions, one verb each:

    {"set": {"link": "r1:eth1", "loss": "30%"}}   impairments of a link (both ends), an
    {"set": {"interface": "r1:eth0", ...}}        interface (what it sends) or every
    {"set": {"network": "lan", ...}}              attachment of a network; none given:
                                                  no impairments at all
    {"down": "r1:eth1"}, {"up": "r1:eth1"}        an interface ("node:ifname"), or
    {"down": {"link": "r1:eth1"}}                 both ends of a link
    {"stop" | "start" | "restart" | "kill": "r1"} a node; its interfaces, addresses and
                                                  routes are kept while it is stopped
    {"restore": "all" | "r1:eth1" | {"node": "r1"} | {"link": ...} | {"network": ...}}
                                                  back to what the labfile says

A change for the agent names a node and an interface of it (never a namespace or a host
link: the agent finds those in its own journal) and, for impairments, the previous value
too, which the agent puts back when the kernel refuses the new one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from labplan.drivers import DRIVERS
from labplan.errors import FieldError
from labplan.export import shaping_document
from labplan.fields import ENDPOINT_HINT, ENDPOINT_PATTERN, IMPAIRMENTS, NAME_PATTERN
from labplan.model import Labfile, Node, Shaping
from labplan.network_rules import impairments as checked_impairments
from labplan.structure import INVALID, Checker

Verb = Literal["set", "down", "up", "restore", "stop", "start", "restart", "kill"]
VERBS: tuple[Verb, ...] = ("set", "down", "up", "restore", "stop", "start", "restart", "kill")
NODE_VERBS = ("stop", "start", "restart", "kill")
TARGET_KINDS = ("link", "interface", "network", "node")
STOPPED = "stopped"


class LiveError(Exception):
    """An action that cannot be made: its errors name the fields (`set.loss`, `down`)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Target:
    kind: Literal["link", "interface", "network", "node", "all"]
    name: str

    def __str__(self) -> str:
        return "everything" if self.kind == "all" else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Action:
    verb: Verb
    target: Target
    shaping: Shaping | None = None  # `set`'s impairments; None: none at all

    def describe(self) -> str:
        """The action in a history's words: "set loss 30% on link r1:eth1"."""
        if self.verb == "set":
            said = " ".join(f"{k} {v}" for k, v in impairments_document(self.shaping).items())
            return f"set {said or 'no impairments'} on {self.target}"
        return f"{self.verb} {self.target}"


# --- the lab's live state ---------------------------------------------------------------


@dataclass
class State:
    """What differs from the labfile now: each changed interface's impairments (a
    document, {} for none) and whether it is down, each stopped node."""

    impairments: dict[str, dict[str, Any]] = field(default_factory=dict)  # endpoint -> doc
    down: set[str] = field(default_factory=set)  # endpoints
    stopped: set[str] = field(default_factory=set)  # nodes

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> State:
        data = data or {}
        return cls(
            impairments={str(k): dict(v) for k, v in dict(data.get("impairments") or {}).items()},
            down={str(e) for e in data.get("down") or ()},
            stopped={str(n) for n in data.get("stopped") or ()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "impairments": dict(sorted(self.impairments.items())),
            "down": sorted(self.down),
            "stopped": sorted(self.stopped),
        }

    @property
    def empty(self) -> bool:
        return not (self.impairments or self.down or self.stopped)

    def copy(self) -> State:
        return State(dict(self.impairments), set(self.down), set(self.stopped))


# --- parsing ----------------------------------------------------------------------------


def parse(data: object) -> Action:
    """The action `data` says, or LiveError naming each wrong field."""
    if not isinstance(data, Mapping) or not data:
        raise LiveError([FieldError("", f"an action is one of {', '.join(VERBS)}, like {EXAMPLE}")])
    verbs = [key for key in data if key in VERBS]
    unknown = [str(key) for key in data if key not in VERBS]
    if unknown:
        raise LiveError(
            [FieldError(key, f"unknown action; give one of {', '.join(VERBS)}") for key in unknown]
        )
    if len(verbs) != 1:
        raise LiveError([FieldError(verbs[1], "give one action at a time")])
    verb: Verb = verbs[0]
    value = data[verb]
    if verb == "set":
        return _parse_set(value)
    if verb in NODE_VERBS:
        return Action(verb, Target("node", _node_name(verb, value)))
    if verb == "restore" and value == "all":
        return Action(verb, Target("all", "all"))
    kinds = TARGET_KINDS if verb == "restore" else ("link", "interface")
    return Action(verb, _target(verb, value, kinds))


EXAMPLE = '{"set": {"link": "r1:eth1", "loss": "30%"}} or {"down": "r1:eth1"}'


def _parse_set(value: object) -> Action:
    if not isinstance(value, Mapping):
        raise LiveError(
            [FieldError("set", "give a target and impairments, like {link: r1:eth1, loss: 30%}")]
        )
    kinds = [k for k in ("link", "interface", "network") if k in value]
    if len(kinds) != 1:
        raise LiveError(
            [FieldError("set", "name one of link, interface or network, like link: r1:eth1")]
        )
    kind = kinds[0]
    target = _target("set", {kind: value[kind]}, (kind,))
    checker = Checker(version=2)
    raw = checker.check_object(IMPAIRMENTS, {k: v for k, v in value.items() if k != kind}, "set")
    shaping = checked_impairments(checker, "set", raw)
    if checker.errors or shaping is INVALID:
        raise LiveError(checker.errors)
    return Action("set", target, shaping)


def _target(path: str, value: object, kinds: Iterable[str]) -> Target:
    kinds = tuple(kinds)
    if isinstance(value, str):
        kind = "interface" if "interface" in kinds else kinds[0]
        return Target(kind, _name(path, kind, value))  # type: ignore[arg-type]
    if isinstance(value, Mapping) and len(value) == 1:
        kind = str(next(iter(value)))
        if kind in kinds:
            return Target(kind, _name(f"{path}.{kind}", kind, value[kind]))  # type: ignore[arg-type]
    shown = ", ".join(kinds)
    raise LiveError([FieldError(path, f"name one {shown.replace(', ', ' or ')}, like r1:eth1")])


def _name(path: str, kind: str, value: object) -> str:
    if kind in ("network", "node"):
        if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value):
            raise LiveError([FieldError(path, f"{value!r} is not a {kind} name")])
        return value
    if not isinstance(value, str) or not re.fullmatch(ENDPOINT_PATTERN, value):
        raise LiveError([FieldError(path, f"{value!r} is not an interface: {ENDPOINT_HINT}")])
    return value


def _node_name(verb: str, value: object) -> str:
    if isinstance(value, Mapping) and set(value) == {"node"}:
        value = value["node"]
    return _name(verb, "node", value)


# --- what an action touches -------------------------------------------------------------


def baseline(lab: Labfile) -> dict[str, Shaping | None]:
    """Every interface a live change may touch ("node:ifname"), with the impairments its
    labfile gives it: its attachment's or its network's, or its link end's."""
    networks = {n.name: n for n in lab.networks}
    found: dict[str, Shaping | None] = {}
    for node in lab.nodes:
        if not _own_netns(lab, node):
            continue
        for att in node.networks:
            if att.ifname is not None:
                found[f"{node.name}:{att.ifname}"] = (
                    att.impairments or networks[att.network].shaping
                )
    for link in lab.links:
        for end in link.ends:
            found[end.endpoint] = end.impairments
    return found


def interfaces(lab: Labfile, action: Action) -> list[str]:
    """The interfaces ("node:ifname") the action changes, or LiveError saying why the lab
    has no such thing."""
    path = action.verb if action.verb != "set" else f"set.{action.target.kind}"
    target = action.target
    nodes = {n.name: n for n in lab.nodes}
    known = baseline(lab)
    if target.kind == "all":
        return sorted(known)
    if target.kind == "node":
        node = nodes.get(target.name)
        if node is None:
            raise LiveError([FieldError(path, f"the lab has no node {target.name!r}")])
        return [e for e in known if e.split(":", 1)[0] == node.name]
    if target.kind == "network":
        if target.name not in {n.name for n in lab.networks}:
            raise LiveError([FieldError(path, f"the lab has no network {target.name!r}")])
        found = [
            f"{n.name}:{a.ifname}"
            for n in lab.nodes
            for a in n.networks
            if a.network == target.name and f"{n.name}:{a.ifname}" in known
        ]
        if not found:
            raise LiveError(
                [FieldError(path, f"network {target.name} has no interface a change can reach")]
            )
        return found
    name, _, ifname = target.name.partition(":")
    node = nodes.get(name)
    if node is None:
        raise LiveError([FieldError(path, f"the lab has no node {name!r}")])
    if _on_host_network(lab, node):
        raise LiveError(
            [FieldError(path, f"{name} uses the host's network: its interfaces are the host's")]
        )
    if node.joins is not None:
        raise LiveError(
            [
                FieldError(
                    path, f"{name} shares {node.joins}'s network: change {node.joins}'s interfaces"
                )
            ]
        )
    if target.kind == "link":
        for link in lab.links:
            ends = [end.endpoint for end in link.ends]
            if target.name in ends:
                return ends
        raise LiveError([FieldError(path, f"no link of the lab ends at {target.name}")])
    if target.name not in known:
        raise LiveError([FieldError(path, f"{name} has no interface {ifname!r}")])
    return [target.name]


def _on_host_network(lab: Labfile, node: Node) -> bool:
    drivers = {n.name: n.driver for n in lab.networks}
    return any(DRIVERS[drivers[a.network]].shares_host_netns for a in node.networks)


def _own_netns(lab: Labfile, node: Node) -> bool:
    return node.joins is None and not _on_host_network(lab, node)


# --- the changes an agent makes ---------------------------------------------------------


def plan(lab: Labfile, state: State, action: Action) -> tuple[list[dict[str, Any]], State]:
    """The agent's changes for `action` in their order, and the lab's live state after
    them; LiveError when the lab has no such target or the action makes no sense now
    (stopping a stopped node)."""
    known = baseline(lab)
    after = state.copy()
    changes: list[dict[str, Any]] = []
    path = action.verb

    def current(endpoint: str) -> dict[str, Any]:
        if endpoint in after.impairments:
            return after.impairments[endpoint]
        return impairments_document(known.get(endpoint))

    def shape(endpoint: str, doc: dict[str, Any]) -> None:
        before = current(endpoint)
        if doc == before:
            return
        node, ifname = endpoint.split(":", 1)
        changes.append(
            {"node": node, "ifname": ifname, "impairments": wire(doc), "previous": wire(before)}
        )
        if doc == impairments_document(known.get(endpoint)):
            after.impairments.pop(endpoint, None)
        else:
            after.impairments[endpoint] = doc

    def link_state(endpoint: str, up: bool) -> None:
        node, ifname = endpoint.split(":", 1)
        if (endpoint not in after.down) == up:
            return
        if node not in after.stopped:
            changes.append({"node": node, "ifname": ifname, "up": up})
        (after.down.discard if up else after.down.add)(endpoint)

    def node_of(endpoint: str) -> str:
        return endpoint.split(":", 1)[0]

    if action.verb in NODE_VERBS:
        name = action.target.name
        node = next((n for n in lab.nodes if n.name == name), None)
        if node is None:
            raise LiveError([FieldError(path, f"the lab has no node {name!r}")])
        stopped = name in after.stopped
        if action.verb in ("stop", "kill") and stopped:
            raise LiveError([FieldError(path, f"{name} is already stopped")])
        if action.verb == "start" and not stopped:
            raise LiveError([FieldError(path, f"{name} is already running")])
        if action.verb in ("stop", "kill", "restart") and not stopped:
            changes.append({"node": name, "action": "kill" if action.verb == "kill" else "stop"})
            after.stopped.add(name)
        if action.verb in ("start", "restart"):
            down = sorted(e.split(":", 1)[1] for e in after.down if node_of(e) == name)
            changes.append({"node": name, "action": "start", "down": down})
            after.stopped.discard(name)
        return changes, after

    endpoints = interfaces(lab, action)
    if action.verb == "set":
        doc = impairments_document(action.shaping)
        for endpoint in endpoints:
            shape(endpoint, doc)
    elif action.verb in ("down", "up"):
        asleep = sorted({node_of(e) for e in endpoints} & after.stopped)
        if action.verb == "up" and asleep:
            raise LiveError([FieldError(path, f"{', '.join(asleep)} is stopped: start it first")])
        for endpoint in endpoints:
            link_state(endpoint, action.verb == "up")
    else:  # restore
        nodes = {node_of(e) for e in endpoints}
        if action.target.kind == "all":
            nodes = set(after.stopped)
        elif action.target.kind == "node":
            nodes = {action.target.name}
        for name in sorted(nodes & after.stopped):
            # A node started again comes up with all its interfaces.
            changes.append({"node": name, "action": "start", "down": []})
            after.stopped.discard(name)
            after.down -= {e for e in after.down if node_of(e) == name}
        for endpoint in endpoints:
            link_state(endpoint, True)
            shape(endpoint, impairments_document(known.get(endpoint)))
    return changes, after


def impairments_document(shaping: Shaping | None) -> dict[str, Any]:
    """Impairments as a labfile writes them ({"loss": "30%"}); {} for none."""
    return {} if shaping is None else shaping_document(shaping)


def wire(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """Impairments in the agent's units (bit/s, microseconds, percent), None for none."""
    if not document:
        return None
    checker = Checker(version=2)
    raw = checker.check_object(IMPAIRMENTS, dict(document), "impairments")
    shaping = checked_impairments(checker, "impairments", raw)
    if checker.errors or not isinstance(shaping, Shaping):
        raise LiveError(checker.errors or [FieldError("impairments", "not impairments")])
    return dataclasses.asdict(shaping)
