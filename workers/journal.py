"""The agent's local record of every deployment it built: `<data>/journal/<token>.json`,
one JSON object per line, appended as the job goes, so a crash loses at most the line
being written. It also serves as the local index from lab name to token.

Lines: a header `{"token", "lab", "host", "group", "root_netns", "plan"}` (again on each
re-apply; with `"budget"` and `"cgroup"`, where the deployment's cgroup was put below the
`labmgr` parent, "r5/lm1", when it runs inside a reservation), `{"op": i, "kind": k}`
before op i runs, `{"node": name, "pid", "start", "uid_base"}` once a node runs, and
`{"image": ref, "digest": "sha256:..."}` once the image a node runs is in the host's store
(its pull step), and `{"state": "applied" | "failed", ...}` at the end. A live change
that stops a node appends `{"stopped": name}`; its start again, a new `{"node": ...}`.

`Journal.node` is how the agent finds a node it started (exec, terminals, captures, the
command line): its init and its spawn op, read back from the plan the journal holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from labplan import codec, ops
from labplan.errors import LabfileError
from workers.driver import NodeProcess

log = logging.getLogger("labmgr.agent")


@dataclass(frozen=True)
class RunningNode:
    """A node the journal says was started on this host: its init as started (pid and
    start time: whether it still runs is `alive`'s to say), its spawn op, and the host's
    part of the plan it belongs to."""

    init: NodeProcess
    spawn: ops.SpawnNode
    plan: ops.HostPlan


@dataclass
class Record:
    """What the journal of one deployment says, read back."""

    token: str
    header: dict[str, Any] = field(default_factory=dict)
    started_ops: int = 0
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    uid_bases: dict[str, int] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # reference -> manifest digest
    stopped: set[str] = field(default_factory=set)  # nodes stopped by a live change
    state: str = "applying"
    error: str | None = None

    @property
    def lab(self) -> str:
        return str(self.header.get("lab", ""))

    @property
    def cgroup(self) -> str:
        """The deployment's cgroup below the `labmgr` parent: "lm1", or "r5/lm1" inside
        reservation 5."""
        return str(self.header.get("cgroup") or self.token)

    @property
    def reservation_cgroup(self) -> str | None:
        """The reservation's cgroup holding the deployment's ("r5"), if any."""
        holder, _, rest = self.cgroup.rpartition("/")
        return holder if holder and rest == self.token else None

    @property
    def budget(self) -> dict[str, Any] | None:
        """The reservation's share the deployment was applied with, as sent."""
        budget = self.header.get("budget")
        return dict(budget) if isinstance(budget, dict) else None

    def node_cgroup(self, rel: str) -> str:
        """A plan's node cgroup ("lm1/n0") where it is on the host ("r5/lm1/n0")."""
        holder = self.reservation_cgroup
        return f"{holder}/{rel}" if holder and rel.startswith(self.token + "/") else rel

    def host_plan(self) -> ops.HostPlan | None:
        """This host's part of the plan the deployment was applied with; None without one
        (a journal cut before its header) or when it no longer decodes. Not held to the
        guards an apply checks (`codec.guard_errors`): a lab an earlier version started
        is still entered, shown and sampled."""
        data = self.header.get("plan")
        if data is None:
            return None
        try:
            return codec.plan_from_dict(data).for_host(str(self.header.get("host")))
        except LabfileError as exc:
            log.warning("the journal of %s holds a plan that does not decode: %s", self.token, exc)
            return None

    def started(self) -> list[RunningNode]:
        """Every node of the host's plan that the journal says was started, in plan order."""
        plan = self.host_plan()
        if plan is None:
            return []
        return [
            RunningNode(self.nodes[op.node], op, plan)
            for op in plan.ops
            if isinstance(op, ops.SpawnNode) and op.node in self.nodes
        ]


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._open: dict[str, IO[str]] = {}

    def path(self, token: str) -> Path:
        return self.directory / f"{token}.json"

    def append(self, token: str, entry: dict[str, Any]) -> None:
        stream = self._open.get(token)
        if stream is None:
            # Only root reads a journal: it holds the tenant's plan (commands, environment).
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = os.open(self.path(token), flags, 0o600)
            stream = self._open[token] = os.fdopen(fd, "a", encoding="utf-8")
        stream.write(json.dumps(entry, separators=(",", ":")) + "\n")
        stream.flush()

    def close(self, token: str) -> None:
        stream = self._open.pop(token, None)
        if stream is not None:
            stream.close()

    def read(self, token: str) -> Record | None:
        try:
            text = self.path(token).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        record = Record(token)
        for line in text.splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by a crash
                self._apply(record, json.loads(line))
        return record

    @staticmethod
    def _apply(record: Record, entry: dict[str, Any]) -> None:
        if "plan" in entry:
            record.header = entry
            record.state, record.error = "applying", None
            record.images = {}  # the re-apply's pulls say them again
        elif "op" in entry:
            record.started_ops = int(entry["op"]) + 1
        elif "node" in entry:
            name = str(entry["node"])
            note = str(entry.get("note") or "")
            record.nodes[name] = NodeProcess(int(entry["pid"]), int(entry["start"]), note)
            record.stopped.discard(name)
            if entry.get("uid_base") is not None:
                record.uid_bases[name] = int(entry["uid_base"])
        elif "stopped" in entry:
            record.stopped.add(str(entry["stopped"]))
        elif "image" in entry:
            record.images[str(entry["image"])] = str(entry["digest"])
        elif "state" in entry:
            record.state = str(entry["state"])
            record.error = entry.get("error")

    def node(self, token: str, name: str) -> RunningNode | None:
        """The node `name` of deployment `token` as started here; None if this host has
        no such deployment or never started such a node."""
        record = self.read(token)
        if record is None or name not in record.nodes:
            return None
        return next((n for n in record.started() if n.spawn.node == name), None)

    def remove(self, token: str) -> bool:
        self.close(token)
        try:
            self.path(token).unlink()
        except FileNotFoundError:
            return False
        return True

    def tokens(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def find(self, name: str) -> str | None:
        """The token of a deployment given its token or its lab's name."""
        if self.path(name).exists():
            return name
        for token in self.tokens():
            record = self.read(token)
            if record is not None and record.lab == name:
                return token
        return None


def images_in_use(journal: Journal) -> dict[str, list[str]]:
    """Each image digest the deployments on this host run, with their tokens: what the
    image store must keep."""
    used: dict[str, list[str]] = {}
    for token in journal.tokens():
        record = journal.read(token)
        if record is None:
            continue
        for digest in sorted(set(record.images.values())):
            used.setdefault(digest, []).append(token)
    return used
