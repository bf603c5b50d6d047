"""cgroups on v2, v1 and hybrid hosts: the `labmgr` parent, node cgroups under it, limits
written then read back (v2 keys translated to v1 files), and killing a cgroup's processes.

Plans speak cgroup v2 (`memory.max`, `cpu.max`, ...). On a v1/hybrid host a node cgroup
is one directory per managed v1 hierarchy, and each v2 key maps to its v1 file(s).

A deployment's cgroup is `labmgr/<token>`, or `labmgr/r<id>/<token>` when it runs inside
a reservation: `r<id>` holds the reservation's share (a `labplan.messages.Budget`, its
name `labplan.messages.reservation_cgroup`'s), so the kernel bounds
all its labs together. Plans name node cgroups without that level ("lm1/n0"); `Cgroups`
finds where the token lives, so every caller keeps using the plan's names.

The `labmgr` parent itself carries the host's ceiling (workers.kernel.ceiling), written by
the agent whenever it makes cgroups: all labs together leave the host its reserve.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labplan import naming
from labplan.messages import CPU_PERIOD, RESERVATION_CGROUP_PREFIX, Budget
from workers import config
from workers.kernel.ceiling import Ceiling, host_ceiling

log = logging.getLogger("labmgr.agent")

# `labmgr` unless the agent is one of several sharing this kernel (workers.config).
PARENT = config.cgroup_parent()
MOUNTINFO = Path("/proc/self/mountinfo")
# v1 controllers a node cgroup lives in: the limits' controllers plus accounting and the
# freezer, which teardown uses to stop every process before killing it.
V1_MANAGED = ("cpu", "cpuacct", "memory", "pids", "blkio", "freezer")
V2_ENABLED = ("cpu", "memory", "pids", "io")
V1_UNLIMITED = "-1"


class CgroupError(Exception):
    """A limit could not be written or did not read back as written."""


def is_reservation_cgroup(name: str) -> bool:
    """Whether a name below `labmgr` is a reservation's parent cgroup."""
    rest = name.removeprefix(RESERVATION_CGROUP_PREFIX)
    return name != rest and rest.isalnum() and rest.isascii() and rest == rest.lower()


def budget_limits(budget: Budget) -> list[tuple[str, str]]:
    """The v2 keys and values a budget writes on its cgroup (the reservation's, or the
    deployment's own for a host-wide one): CPUs as a quota per period, bytes of memory,
    processes, "max" for no bound (so a share that drops a bound on a re-apply loses it
    in the kernel too)."""
    cpus, memory, pids = budget["cpus"], budget["memory"], budget["pids"]
    cpu = "max" if cpus is None else str(round(cpus * CPU_PERIOD))
    return [
        ("cpu.max", f"{cpu} {CPU_PERIOD}"),
        ("memory.max", "max" if memory is None else str(memory)),
        ("pids.max", "max" if pids is None else str(pids)),
    ]


@dataclass(frozen=True)
class CgroupLayout:
    """Where the cgroup filesystems are mounted: `unified` is the cgroup2 mount (if any),
    `v1` maps each v1 controller to its hierarchy's mount point."""

    unified: Path | None
    v1: dict[str, Path]

    @property
    def mode(self) -> str:
        if self.v1 and self.unified is not None:
            return "hybrid"
        return "v1" if self.v1 else "v2"

    @property
    def controllers(self) -> tuple[str, ...]:
        if self.mode == "v2" and self.unified is not None:
            text = (self.unified / "cgroup.controllers").read_text()
            return tuple(sorted(text.split()))
        return tuple(sorted(self.v1))

    def hierarchies(self) -> list[Path]:
        """The mount points a node cgroup has a directory in, each once."""
        if self.mode == "v2":
            return [self.unified] if self.unified is not None else []
        seen: dict[Path, None] = {}
        for name in V1_MANAGED:
            if name in self.v1:
                seen[self.v1[name]] = None
        return list(seen)


def detect_layout(mountinfo: str | None = None) -> CgroupLayout:
    """Read the cgroup mounts of this mount namespace; assume nothing about the host."""
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    unified: Path | None = None
    v1: dict[str, Path] = {}
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        mount_point, fstype, super_opts = Path(fields[4]), fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2" and unified is None:
            unified = mount_point
        elif fstype == "cgroup":
            for opt in super_opts.split(","):
                if opt not in ("rw", "ro") and "=" not in opt and opt not in v1:
                    v1[opt] = mount_point
    return CgroupLayout(unified=unified, v1=v1)


def _v1_cpu_shares(weight: int) -> int:
    # runc's mapping of cgroup v2 cpu.weight (1..10000) onto v1 cpu.shares (2..262144).
    return 2 + ((weight - 1) * 262142) // 9999


def _v1_blkio_weight(weight: int) -> int:
    # runc's mapping of io.weight (1..10000) onto blkio.weight (10..1000).
    return 10 + ((weight - 1) * 990) // 9999


def v1_files(key: str, value: str, memory_max: str | None = None) -> list[tuple[str, str, str]]:
    """(controller, file, value) writes standing for one v2 key on a v1 hierarchy."""
    if key == "cpu.max":
        quota, _, period = value.partition(" ")
        period = period or str(CPU_PERIOD)
        quota = V1_UNLIMITED if quota == "max" else quota
        return [("cpu", "cpu.cfs_period_us", period), ("cpu", "cpu.cfs_quota_us", quota)]
    if key == "cpu.weight":
        return [("cpu", "cpu.shares", str(_v1_cpu_shares(int(value))))]
    if key == "memory.max":
        return [("memory", "memory.limit_in_bytes", V1_UNLIMITED if value == "max" else value)]
    if key == "memory.swap.max":
        # v1 limits memory + swap together; v2 limits swap alone.
        if value == "max" or memory_max is None or memory_max == "max":
            return [("memory", "memory.memsw.limit_in_bytes", V1_UNLIMITED)]
        return [("memory", "memory.memsw.limit_in_bytes", str(int(memory_max) + int(value)))]
    if key == "pids.max":
        return [("pids", "pids.max", value)]
    if key == "io.weight":
        weight = int(value.split()[-1])
        return [("blkio", "blkio.weight", str(_v1_blkio_weight(weight)))]
    if key == "io.max":
        device, *settings = value.split()
        files = {
            "rbps": "blkio.throttle.read_bps_device",
            "wbps": "blkio.throttle.write_bps_device",
            "riops": "blkio.throttle.read_iops_device",
            "wiops": "blkio.throttle.write_iops_device",
        }
        writes = []
        for setting in settings:
            name, _, amount = setting.partition("=")
            writes.append(("blkio", files[name], f"{device} {0 if amount == 'max' else amount}"))
        return writes
    raise CgroupError(f"unknown cgroup key {key}")


def _reads_back(written: str, read: str) -> bool:
    """Whether a file's content matches what was written, allowing the kernel's own
    rounding (memory limits round down to a page) and v1's spelling of "no limit"."""
    read = read.strip()
    if read == written:
        return True
    if written in (V1_UNLIMITED, "max") and read in ("max", "9223372036854771712"):
        return True
    if written.isdigit() and read.isdigit():
        return 0 <= int(written) - int(read) < 65536
    return " ".join(read.split()) in (written, " ".join(written.split()))


class Cgroups:
    """The labmgr cgroups of this host. `rel` paths ("lm1/n0") are below the parent
    (`parent`, default `labmgr` or LABMGR_AGENT_CGROUP_PARENT), which is held to
    `ceiling` (default: this machine less the agent's reserve)."""

    def __init__(
        self,
        layout: CgroupLayout | None = None,
        parent: str | None = None,
        ceiling: Ceiling | None = None,
    ) -> None:
        self.layout = layout or detect_layout()
        self.parent = parent or PARENT
        self._ceiling = ceiling
        self._memory_max: dict[str, str] = {}
        self._parent_ready = False
        self._places: dict[str, str] = {}

    def dirs(self, rel: str) -> list[Path]:
        rel = self.resolve(rel)
        return [h / self.parent / rel for h in self.layout.hierarchies()]

    def resolve(self, rel: str) -> str:
        """`rel` below the `labmgr` parent as it is on this host: a plan's "lm1/n0" becomes
        "r5/lm1/n0" when deployment lm1 was put in reservation 5. Names that start with a
        reservation's cgroup, and tokens found nowhere, are taken as they are."""
        token = rel.partition("/")[0]
        if is_reservation_cgroup(token):
            return rel
        place = self._places.get(token)
        if place is None:
            place = self._find(token)
            if place is None:
                return rel
            self._places[token] = place  # a deployment never moves while it lives
        return f"{place}/{rel}" if place else rel

    def _find(self, token: str) -> str | None:
        """The reservation cgroup holding the token's cgroup, "" for the `labmgr` parent
        itself, None if it is nowhere. One stat in the common case; a reservation's lab
        costs one listing of the parent, once per `Cgroups`."""
        hierarchies = self.layout.hierarchies()
        if not hierarchies:
            return None
        parent = hierarchies[0] / self.parent
        if (parent / token).is_dir():
            return ""
        try:
            with os.scandir(parent) as entries:
                holders = [e.name for e in entries if is_reservation_cgroup(e.name)]
        except FileNotFoundError:
            return None
        return next((h for h in sorted(holders) if (parent / h / token).is_dir()), None)

    def procs_files(self, rel: str) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs(rel)]

    def ensure_parent(self) -> None:
        """The `labmgr` parent in every hierarchy, held to the host's ceiling (written
        again each time: once per job, so a ceiling changed by hand is put back)."""
        if self._parent_ready:
            return  # once per job: it is asked before every node cgroup
        for hierarchy in self.layout.hierarchies():
            parent = hierarchy / self.parent
            parent.mkdir(exist_ok=True)
            if self.layout.mode == "v2":
                self._enable_controllers(hierarchy)
                self._enable_controllers(parent)
            elif (hierarchy / "memory.use_hierarchy").exists():
                with contextlib.suppress(OSError):
                    (parent / "memory.use_hierarchy").write_text("1")
        self.limit_parent()
        self._parent_ready = True

    def limit_parent(self) -> Ceiling:
        """Write the ceiling on the `labmgr` parent and return it. A kind the kernel
        refuses now (a running lab holds more memory than it, or, on v1, a CPU quota
        above it) is logged and left as it was: the labs keep running, and the next job
        tries again."""
        ceiling = self._ceiling or host_ceiling()
        for key, value in ceiling.limits():
            try:
                self._set("", key, value)
            except CgroupError as exc:
                log.warning("the labmgr parent's ceiling: %s", exc)
        return ceiling

    def _enable_controllers(self, directory: Path) -> None:
        available = set((directory / "cgroup.controllers").read_text().split())
        wanted = " ".join(f"+{c}" for c in V2_ENABLED if c in available)
        if wanted:
            (directory / "cgroup.subtree_control").write_text(wanted)

    def ensure(self, rel: str) -> bool:
        """Create the cgroup (and its parents); True when it was created."""
        self.ensure_parent()
        created = False
        for directory in self.dirs(rel):
            # Levels above a node ("r5", "lm1") also need v2 controllers delegated
            # downwards; a node's own cgroup must not (its processes live in it).
            for level in reversed([directory, *directory.parents]):
                if self.parent not in level.parts or level.exists():
                    continue
                level.mkdir()
                created = True
                if self.layout.mode == "v2" and (level != directory or _holds_cgroups(level)):
                    self._enable_controllers(level)
        return created

    def set_limit(self, rel: str, key: str, value: str) -> None:
        """Write one v2-style limit, translated for v1, and check that it reads back."""
        self._set(self.resolve(rel), key, value)

    def _set(self, rel: str, key: str, value: str) -> None:
        """`set_limit` on a path below the parent as it is on this host ("" for the
        parent itself)."""
        if self.layout.mode == "v2" and self.layout.unified is not None:
            self._write_checked(self.layout.unified / self.parent / rel / key, value)
            return
        if key == "memory.max":
            self._memory_max[rel] = value
        if key == "cpu.max":
            value = self._v1_cpu_within(rel, value)
        for controller, name, content in v1_files(key, value, self._memory_max.get(rel)):
            hierarchy = self.layout.v1.get(controller)
            if hierarchy is None:
                raise CgroupError(f"the host has no {controller} cgroup controller for {key}")
            self._write_checked(hierarchy / self.parent / rel / name, content)

    def _v1_cpu_within(self, rel: str, value: str) -> str:
        """A CPU limit no larger than those of the cgroups above it (the parent's ceiling,
        a reservation's share). v1 refuses a larger quota than one above with EINVAL;
        v2 takes it and holds the cgroup to the smallest above, which is what is written
        here, so a node's `cpus: 2` runs on a host whose labs get 1.8 as on v2."""
        quota, _, period_text = value.partition(" ")
        cpu = self.layout.v1.get("cpu")
        if quota == "max" or cpu is None or not rel:
            return value
        period = int(period_text or CPU_PERIOD)
        allowed = int(quota)
        level = cpu / self.parent / rel
        while level != cpu:
            level = level.parent
            try:
                above = int((level / "cpu.cfs_quota_us").read_text())
                above_period = int((level / "cpu.cfs_period_us").read_text())
            except (FileNotFoundError, ValueError):
                continue
            if above > 0:
                allowed = min(allowed, above * period // above_period)
        return f"{allowed} {period}" if allowed < int(quota) else value

    def _write_checked(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as exc:
            raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror}") from exc
        read = path.read_text()
        if not _reads_back(value, read.splitlines()[-1] if read.strip() else ""):
            raise CgroupError(f"{path} reads {read.strip()!r} after writing {value!r}")

    def read(self, rel: str, name: str) -> str | None:
        """A cgroup file of the node (v1: searched in every hierarchy), None if absent."""
        for directory in self.dirs(rel):
            with contextlib.suppress(FileNotFoundError):
                return (directory / name).read_text()
        return None

    def _process_hierarchy(self, rel: str) -> Path | None:
        """The node cgroup's directory in one hierarchy that holds all its processes.

        Every process of a node joins its cgroup in every hierarchy and can only move
        within that subtree, so one hierarchy lists them all; on v1 the freezer's, which
        teardown freezes anyway."""
        if self.layout.mode != "v2" and "freezer" in self.layout.v1:
            return self.layout.v1["freezer"] / self.parent / self.resolve(rel)
        dirs = self.dirs(rel)
        return dirs[0] if dirs else None

    def pids(self, rel: str) -> set[int]:
        """Every process in the cgroup or below it."""
        found: set[int] = set()
        top = self._process_hierarchy(rel)
        for directory in _subtree(top) if top is not None else ():
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return found

    def kill(self, rel: str, timeout: float = 5.0) -> int:
        """Kill every process in the cgroup subtree and wait until none is left.
        Returns how many processes were seen."""
        seen = self.signal(rel)
        if seen:
            self.wait_empty(rel, seen, timeout)
        return len(seen)

    def signal(self, rel: str) -> set[int]:
        """SIGKILL every process in the cgroup subtree without waiting; those seen.

        v2 writes cgroup.kill; v1 freezes the subtree first so that nothing forks while
        it is being killed, then kills and thaws.
        """
        seen = self.pids(rel)
        if not seen:
            return seen
        if self.layout.mode == "v2":
            kill_file = self.dirs(rel)[0] / "cgroup.kill"
            if kill_file.exists():
                kill_file.write_text("1")
            else:
                _kill_all(seen)
        else:
            self._freeze_kill_thaw(rel, seen)
        return seen

    def _freeze_kill_thaw(self, rel: str, seen: set[int]) -> None:
        freezer = self.layout.v1.get("freezer")
        state = freezer / self.parent / self.resolve(rel) / "freezer.state" if freezer else None
        if state is not None and state.exists():
            state.write_text("FROZEN")
        _kill_all(seen | self.pids(rel))
        if state is not None and state.exists():
            state.write_text("THAWED")

    def wait_empty(self, rel: str, seen: set[int], timeout: float = 5.0) -> None:
        # Node inits are the agent's children (it is their subreaper): waiting for each
        # is exact and costs nothing while the kernel tears their namespaces down. Killing
        # an init ends its whole PID namespace, so few processes are left after that.
        deadline = time.monotonic() + timeout
        _reap_until(seen, deadline)
        while True:
            left = self.pids(rel)
            reap(seen)
            if not left:
                return
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {sorted(left)} outlived SIGKILL in {rel}")
            _kill_all(left)
            time.sleep(0.002)

    def remove(self, rel: str) -> bool:
        """Remove the cgroup subtree (processes must be gone); False if already gone.

        A reservation's cgroup is removed only when no lab is left in it: its labs'
        cgroups are theirs to remove, never its."""
        if is_reservation_cgroup(rel):
            return self._remove_if_empty(rel)
        removed = False
        for directory in self.dirs(rel):
            try:
                children = [e.path for e in os.scandir(directory) if e.is_dir()]
            except FileNotFoundError:
                continue
            for child in children:
                _rmdir_tree(Path(child))
            _rmdir(directory)
            removed = True
        return removed

    def _remove_if_empty(self, rel: str) -> bool:
        removed = False
        for directory in self.dirs(rel):
            try:
                if any(e.is_dir(follow_symlinks=False) for e in os.scandir(directory)):
                    return removed
            except FileNotFoundError:
                continue
            _rmdir(directory)
            removed = True
        return removed

    def children(self) -> list[str]:
        """Names under the labmgr parent, all hierarchies: deployment tokens, reservation
        cgroups ("r5") and the tokens inside those ("r5/lm1")."""
        names: set[str] = set()
        for hierarchy in self.layout.hierarchies():
            parent = hierarchy / self.parent
            if not parent.is_dir():
                continue
            for entry in parent.iterdir():
                if not entry.is_dir():
                    continue
                names.add(entry.name)
                if is_reservation_cgroup(entry.name):
                    names.update(f"{entry.name}/{p.name}" for p in entry.iterdir() if p.is_dir())
        return sorted(names)


def _holds_cgroups(directory: Path) -> bool:
    """Whether a cgroup is a level that only holds others: a reservation's or a
    deployment's, never a node's."""
    name = directory.name
    return is_reservation_cgroup(name) or naming.deployment_from_token(name) is not None


def _kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def reap(pids: Iterable[int]) -> None:
    """Reap those of `pids` that are this process's exited children (node inits it
    adopted as a subreaper); others' children are left alone."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _reap_until(pids: Iterable[int], deadline: float) -> None:
    """Reap those of `pids` that are this process's children as they exit, until none
    is left or the deadline passes (a process stuck in the kernel is not waited for)."""
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    pending.discard(pid)
            except ChildProcessError:
                pending.discard(pid)
        if pending:
            time.sleep(0.001)


def _subtree(top: Path) -> list[Path]:
    """`top` and every cgroup below it, parents before children; [] if it is gone."""
    found: list[Path] = []
    pending = [top]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                children = [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            continue
        found.append(directory)
        pending.extend(children)
    return found


def _rmdir_tree(path: Path) -> None:
    """Remove a cgroup and any below it. A node's cgroup rarely has children: try the
    one rmdir first rather than listing the directory (a v1 memory cgroup has ~30 files)."""
    try:
        path.rmdir()
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
    for sub in reversed(_subtree(path)):
        _rmdir(sub)


def _rmdir(path: Path, attempts: int = 100) -> None:
    for attempt in range(attempts):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            # A cgroup stays busy for a moment after its last process exited.
            if exc.errno != errno.EBUSY or attempt == attempts - 1:
                raise
            time.sleep(0.005)
