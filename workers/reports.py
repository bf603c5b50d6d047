"""What the agent tells the control plane, and the local log that makes a job's answer
repeatable: `Reporter` sends `labmgr.control.*` tasks through one `send` seam (tests
collect them), `StepGroups` turns the executor's per-op progress into a few steps, and
`JobLog` keeps each job's reports by Celery task id so a duplicate delivery is answered
again without touching the kernel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labplan import ops
from labplan.messages import (
    STEP_DONE,
    STEP_FAILED,
    STEP_ROLLED_BACK,
    STEP_RUNNING,
    ControlTask,
    ImagesArgs,
    StepArgs,
    StepState,
)
from workers.executor import Step

log = logging.getLogger("labmgr.agent")

Send = Callable[[str, Mapping[str, Any]], None]
STEPS_PER_JOB = 1000  # a job's steps are numbered job * 1000 + i (docs/messages.md)
JOB_LOG_DAYS = 2.0


@dataclass(frozen=True)
class Report:
    task: str
    kwargs: dict[str, Any]

    def to_list(self) -> list[Any]:
        return [self.task, self.kwargs]


@dataclass
class Reporter:
    """Sends reports to the control plane and remembers those of the current job."""

    send: Send
    sent: list[Report] = field(default_factory=list)

    def report(self, task: str, **kwargs: Any) -> None:
        report = Report(task, kwargs)
        self.sent.append(report)
        self.send(task, kwargs)

    def step(
        self,
        deployment: int,
        seq: int,
        total: int,
        name: str,
        target: str,
        status: StepState,
        message: str = "",
        seconds: float = 0.0,
    ) -> None:
        args: StepArgs = {
            "deployment": deployment,
            "seq": seq,
            "total": total,
            "name": name,
            "target": target,
            "status": status,
            "message": message,
            "seconds": round(seconds, 6),
        }
        self.report(ControlTask.DEPLOYMENT_STEP, **args)

    def result(
        self,
        deployment: int,
        action: str,
        ok: bool,
        error: str = "",
        nodes: list[dict[str, Any]] | None = None,
        images: dict[str, str] | None = None,
    ) -> None:
        """A job's outcome; an apply's gives `images`, each reference and the digest its
        nodes ran."""
        extra = {"images": images} if images is not None else {}
        self.report(
            ControlTask.DEPLOYMENT_RESULT,
            deployment=deployment,
            action=action,
            ok=ok,
            error=error,
            nodes=nodes or [],
            **extra,
        )

    def images(self, args: ImagesArgs) -> None:
        """An image job's outcome and the host's whole store after it."""
        self.report(ControlTask.IMAGES, **args)


PHASES: dict[type[ops.Op], str] = {
    ops.CreateNetns: "namespaces",
    ops.CreateCgroup: "namespaces",
    ops.SetCgroupLimit: "namespaces",
    ops.CreateBridge: "networks",
    ops.CreateVxlan: "networks",
    ops.AddFdbEntry: "networks",
    ops.SetNat: "networks",
    ops.IsolateBridge: "networks",
    ops.CreateVethPair: "links",
    ops.CreatePeerLink: "links",
    ops.CreateDummy: "links",
    ops.CreateTunnel: "links",
    ops.CreateMacvlan: "links",
    ops.CreateIpvlan: "links",
    ops.CreateVlan: "links",
    ops.AttachToBridge: "links",
    ops.SpawnNode: "nodes",
}  # link settings (up, addresses, routes, shaping) belong to the phase they follow


# A pull (op `pull_image`, first in a plan) is a step of its own, one per image, which
# reports `running` with the layers and bytes so far until it is done.
PULL_KIND = "pull_image"
PULL_PHASE = "pull"
# A node's exec command (op `exec_in_node`, after every spawn) is a step of its own too,
# with the command's output.
EXEC_KIND = "exec_in_node"
EXEC_PHASE = "exec"
_OWN_STEPS = {PULL_KIND: PULL_PHASE, EXEC_KIND: EXEC_PHASE}
_OWN_PHASES = frozenset(_OWN_STEPS.values())


def phases(plan: ops.HostPlan) -> list[str]:
    """The phase of each op of the plan."""
    current = "namespaces"
    found = []
    for op in plan.ops:
        if op.kind in _OWN_STEPS:
            found.append(_OWN_STEPS[op.kind])
            continue
        current = PHASES.get(type(op), current)
        found.append(current)
    return found


def _summary(kinds: list[str]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


class StepGroups:
    """The executor reports each op; the control plane gets one step per phase of the
    plan (namespaces and cgroups, networks, links and addresses, node processes), and
    one per image pulled: a handful of messages per job whatever the lab's size, each
    saying what it did. A pull's progress is sent as `running` under its step's number,
    which its end then takes."""

    def __init__(
        self, reporter: Reporter, deployment: int, job: int, plan: ops.HostPlan, extra: int = 0
    ) -> None:
        self.reporter = reporter
        self.deployment = deployment
        self.first_seq = job * STEPS_PER_JOB + 1
        self.phases = phases(plan)
        self.last_of_run = {
            i
            for i, phase in enumerate(self.phases)
            if i + 1 == len(self.phases) or self.phases[i + 1] != phase or phase in _OWN_PHASES
        }
        self.total = len(self.last_of_run) + extra
        self.sent = 0
        self._kinds: list[str] = []
        self._details: list[str] = []
        self._seconds = 0.0
        self._rolled_back: list[str] = []

    def extra_step(self, name: str, target: str, status: StepState, message: str = "") -> None:
        """A step outside the plan's ops (removing what a redeploy drops)."""
        self._send(name, target, status, message, 0.0)

    def __call__(self, step: Step) -> None:
        phase = self.phases[step.index]
        if step.state == STEP_ROLLED_BACK:
            self._rolled_back.append(step.target)
            return
        if step.state == STEP_RUNNING:  # its seconds are so far: its end counts them
            self._send(phase, step.target, STEP_RUNNING, step.detail, step.seconds, ends=False)
            return
        self._seconds += step.seconds
        if step.state == STEP_FAILED:
            target = step.target if phase in _OWN_PHASES else f"{step.kind} {step.target}"
            self._send(phase, target, STEP_FAILED, step.detail, 0)
            return
        self._kinds.append(step.kind)
        if step.detail:
            self._details.append(step.detail)
        if step.index in self.last_of_run:
            target = step.target if phase in _OWN_PHASES else _summary(self._kinds)
            self._send(phase, target, STEP_DONE, "; ".join(self._details), self._seconds)
            self._kinds, self._details, self._seconds = [], [], 0.0

    def rolled_back(self, error: str) -> None:
        """The job failed: one last step saying what was undone, and why."""
        self.total = self.sent + 1
        undone = f"{len(self._rolled_back)} objects removed"
        self._send("rollback", undone, STEP_ROLLED_BACK, error, 0)

    def _send(
        self,
        name: str,
        target: str,
        status: StepState,
        message: str,
        seconds: float,
        *,
        ends: bool = True,
    ) -> None:
        """Send the current step; `ends`: it is over, the next send is the next step."""
        seq = self.first_seq + self.sent
        total = max(self.total, self.sent + 1)
        if ends:
            self.sent += 1
        self.reporter.step(self.deployment, seq, total, name, target, status, message, seconds)


def write_private(path: Path, text: str) -> None:
    """Write a file only root reads (0600), in a directory only root enters (0700):
    jobs and journals hold tenants' plans, commands and output."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)


class JobLog:
    """`<data>/jobs/<task id>.json`: a job's name, arguments, state and reports. A job
    found "started" was cut by a crash and is run again on start; one found "done" is
    answered from here. Also numbers each deployment's jobs (`<data>/jobs/<token>.seq`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, task_id: str) -> Path:
        safe = "".join(c for c in task_id if c.isalnum() or c in "-_")
        return self.directory / f"{safe}.json"

    def read(self, task_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(task_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _write(self, task_id: str, data: dict[str, Any]) -> None:
        path = self._path(task_id)
        scratch = path.with_suffix(".tmp")
        write_private(scratch, json.dumps(data, separators=(",", ":")))
        os.replace(scratch, path)  # never a half-written record

    def start(
        self,
        task_id: str,
        job: str,
        kwargs: dict[str, Any],
        signed: dict[str, Any] | None = None,
    ) -> None:
        """Record a job as started, with the message it came in when it came signed."""
        record: dict[str, Any] = {"job": job, "kwargs": kwargs, "state": "started"}
        if signed is not None:
            record["signed"] = signed
        self._write(task_id, record)

    def finish(self, task_id: str, reports: list[Report], value: Any = None) -> None:
        record = self.read(task_id) or {}
        record.update(state="done", reports=[r.to_list() for r in reports], value=value)
        self._write(task_id, record)

    def started(self) -> list[tuple[str, dict[str, Any]]]:
        """Jobs a crash cut short, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
            record = self.read(path.stem)
            if record is not None and record.get("state") == "started":
                found.append((path.stem, record))
        return found

    def next_job(self, token: str) -> int:
        """1 for a deployment's first job on this host, then 2, 3, ..."""
        path = self.directory / f"{token}.seq"
        with contextlib.suppress(FileNotFoundError, ValueError):
            number = int(path.read_text()) + 1
            write_private(path, str(number))
            return number
        write_private(path, "1")
        return 1

    def forget(self, token: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{token}.seq").unlink()

    def prune(self, days: float = JOB_LOG_DAYS) -> int:
        """Drop finished records older than `days`: redeliveries come within hours."""
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - days * 86400
        dropped = 0
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff and '"state":"done"' in path.read_text():
                    path.unlink()
                    dropped += 1
        return dropped
