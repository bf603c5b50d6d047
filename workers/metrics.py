"""Live metrics of every running node of this host, sampled at 1 Hz and sent as one
`labmgr.control.metrics` batch per second (docs/messages.md).

Per node: CPU use from the cgroup's usage counter (v2 `cpu.stat` usage_usec, v1
`cpuacct.usage`), memory current and max, pids, IO bytes (v2 `io.stat`, v1 blkio), and per
interface the counters of `/proc/<init pid>/net/dev`, which shows the init's network
namespace without entering it. Rates are deltas between two samples. The nodes come from
the journal, re-read only when a journal file changes, so a restarted agent resumes
sampling the labs that kept running. Paths are resolved once per node: a sample is a few
`read`s per node and nothing else. What sampling costs: `python -m bench.metrics`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labplan import ops
from labplan.messages import ControlTask, MetricsArgs
from workers.journal import Journal
from workers.kernel import processes
from workers.kernel.cgroups import PARENT, CgroupLayout, detect_layout

log = logging.getLogger("labmgr.agent")

V1_NO_LIMIT = 1 << 62  # v1 reports "no limit" as a huge page-rounded number


@dataclass(frozen=True)
class NodeFiles:
    """Where one node's counters are, resolved once."""

    token: str
    node: str
    pid: int
    start: int
    own_netns: bool
    cpu: Path | None
    cpu_v2: bool
    memory_current: Path | None
    memory_max: Path | None
    pids: Path | None
    io: Path | None
    io_v2: bool


def node_files(
    layout: CgroupLayout,
    token: str,
    spawn: ops.SpawnNode,
    pid: int,
    start: int,
    rel: str | None = None,
) -> NodeFiles:
    """The counters of a node whose cgroup is `rel` below the parent (the plan's name
    unless the journal put the deployment inside a reservation's cgroup)."""
    rel = rel or spawn.cgroup
    if layout.mode == "v2" and layout.unified is not None:
        d = layout.unified / PARENT / rel
        return NodeFiles(
            token,
            spawn.node,
            pid,
            start,
            spawn.netns is not None,
            d / "cpu.stat",
            True,
            d / "memory.current",
            d / "memory.max",
            d / "pids.current",
            d / "io.stat",
            True,
        )

    def v1(controller: str, name: str) -> Path | None:
        mount = layout.v1.get(controller)
        return mount / PARENT / rel / name if mount is not None else None

    return NodeFiles(
        token,
        spawn.node,
        pid,
        start,
        spawn.netns is not None,
        v1("cpuacct", "cpuacct.usage"),
        False,
        v1("memory", "memory.usage_in_bytes"),
        v1("memory", "memory.limit_in_bytes"),
        v1("pids", "pids.current"),
        v1("blkio", "blkio.throttle.io_service_bytes_recursive"),
        False,
    )


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read(65536).decode()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def cpu_usec(text: str | None, v2: bool) -> int | None:
    """CPU time used, in microseconds."""
    if text is None:
        return None
    if not v2:
        value = _int(text)
        return value // 1000 if value is not None else None
    for line in text.splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1])
    return None


def io_bytes(text: str | None, v2: bool) -> tuple[int, int]:
    """(read, written) bytes over every device."""
    read = written = 0
    for line in (text or "").splitlines():
        fields = line.split()
        if v2:
            for item in fields[1:]:
                key, _, value = item.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    written += int(value)
        elif len(fields) == 3 and fields[1] in ("Read", "Write"):
            if fields[1] == "Read":
                read += int(fields[2])
            else:
                written += int(fields[2])
    return read, written


def net_dev(text: str | None) -> dict[str, tuple[int, ...]]:
    """Per interface (not lo): rx bytes, packets, drops, tx bytes, packets, drops, then
    rx and tx errors."""
    found: dict[str, tuple[int, ...]] = {}
    for line in (text or "").splitlines()[2:]:
        name, _, counters = line.partition(":")
        name = name.strip()
        values = counters.split()
        if name == "lo" or len(values) < 12:
            continue
        rx_bytes, rx_packets, rx_errors, rx_drop = (int(v) for v in values[0:4])
        tx_bytes, tx_packets, tx_errors, tx_drop = (int(v) for v in values[8:12])
        found[name] = (
            rx_bytes,
            rx_packets,
            rx_drop,
            tx_bytes,
            tx_packets,
            tx_drop,
            rx_errors,
            tx_errors,
        )
    return found


@dataclass
class _Last:
    t: float
    cpu: int | None
    interfaces: dict[str, tuple[int, ...]]


@dataclass
class Sampler:
    """Samples every node the journal says runs; `sample()` once a second."""

    journal_dir: Path
    layout: CgroupLayout = field(default_factory=detect_layout)
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, tuple[float, int]] = field(default_factory=dict)
    _nodes: list[NodeFiles] = field(default_factory=list)
    _last: dict[tuple[str, str], _Last] = field(default_factory=dict)

    def nodes(self) -> list[NodeFiles]:
        """The nodes to sample, re-read from the journal when a file of it changed."""
        seen: dict[str, tuple[float, int]] = {}
        if self.journal_dir.is_dir():
            for path in self.journal_dir.glob("*.json"):
                with contextlib.suppress(FileNotFoundError):
                    stat = path.stat()
                    seen[path.stem] = (stat.st_mtime, stat.st_size)
        if seen != self._seen:
            self._seen = seen
            self._nodes = self._load(sorted(seen))
            keep = {(n.token, n.node) for n in self._nodes}
            self._last = {k: v for k, v in self._last.items() if k in keep}
        return self._nodes

    def _load(self, tokens: list[str]) -> list[NodeFiles]:
        journal = Journal(self.journal_dir)
        found: list[NodeFiles] = []
        for token in tokens:
            record = journal.read(token)
            # A deployment being applied changes its journal at every op: decoding its
            # plan each second would take the apply's time. Its nodes count once applied.
            if record is None or "plan" not in record.header or record.state != "applied":
                continue
            for node in record.started():
                rel = record.node_cgroup(node.spawn.cgroup)
                init = node.init
                found.append(node_files(self.layout, token, node.spawn, init.pid, init.start, rel))
        return found

    def sample(self) -> list[dict[str, Any]]:
        now = self.clock()
        wall = time.time()
        samples = []
        for node in self.nodes():
            sample = self._sample(node, now, wall)
            if sample is not None:
                samples.append(sample)
        return samples

    def _sample(self, node: NodeFiles, now: float, wall: float) -> dict[str, Any] | None:
        if processes.start_time(node.pid) != node.start:
            return None  # stopped, or its pid now belongs to another process
        key = (node.token, node.node)
        last = self._last.get(key)
        cpu = cpu_usec(_read(node.cpu), node.cpu_v2)
        memory_max = _int(_read(node.memory_max))
        io_read, io_write = io_bytes(_read(node.io), node.io_v2)
        interfaces = net_dev(_read(Path(f"/proc/{node.pid}/net/dev"))) if node.own_netns else {}
        elapsed = now - last.t if last is not None else 0.0
        percent = 0.0
        if last is not None and elapsed > 0 and cpu is not None and last.cpu is not None:
            percent = round(max(cpu - last.cpu, 0) / (elapsed * 1e6) * 100, 2)
        self._last[key] = _Last(now, cpu, interfaces)
        return {
            "token": node.token,
            "node": node.node,
            "t": round(wall, 3),
            "cpu_percent": percent,
            "memory_current": _int(_read(node.memory_current)),
            "memory_max": memory_max
            if memory_max is not None and memory_max < V1_NO_LIMIT
            else None,
            "pids": _int(_read(node.pids)),
            "io_read_bytes": io_read,
            "io_write_bytes": io_write,
            "interfaces": [
                _interface(name, counters, last, elapsed)
                for name, counters in sorted(interfaces.items())
            ],
        }


def _interface(
    name: str, counters: tuple[int, ...], last: _Last | None, elapsed: float
) -> dict[str, Any]:
    rx_bytes, rx_packets, rx_dropped, tx_bytes, tx_packets, tx_dropped = counters[:6]
    rx_errors, tx_errors = counters[6:8] if len(counters) >= 8 else (0, 0)
    before = last.interfaces.get(name) if last is not None else None
    rx_bps = tx_bps = 0.0
    if before is not None and elapsed > 0:
        rx_bps = round(max(rx_bytes - before[0], 0) * 8 / elapsed, 1)
        tx_bps = round(max(tx_bytes - before[3], 0) * 8 / elapsed, 1)
    return {
        "ifname": name,
        "rx_bytes": rx_bytes,
        "tx_bytes": tx_bytes,
        "rx_packets": rx_packets,
        "tx_packets": tx_packets,
        "rx_dropped": rx_dropped,
        "tx_dropped": tx_dropped,
        "rx_errors": rx_errors,
        "tx_errors": tx_errors,
        "rx_bps": rx_bps,
        "tx_bps": tx_bps,
    }


class MetricsLoop(threading.Thread):
    """Samples once a second and sends the batch; a batch that cannot be sent (Redis
    away) is dropped: the next second's is as good."""

    def __init__(
        self,
        sampler: Sampler,
        send: Callable[[str, Mapping[str, Any]], None],
        host: str,
        interval: float = 1.0,
    ) -> None:
        super().__init__(name="metrics", daemon=True)
        self.sampler, self.send, self.host, self.interval = sampler, send, host, interval
        self.stopping = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                samples = self.sampler.sample()
                if samples:
                    batch: MetricsArgs = {
                        "host": self.host,
                        "sent": time.time(),
                        "samples": samples,
                    }
                    self.send(ControlTask.METRICS, batch)
            except Exception:
                log.warning("metrics batch not sent", exc_info=True)
            next_at = max(next_at + self.interval, time.monotonic())
            self.stopping.wait(next_at - time.monotonic())

    def stop(self) -> None:
        self.stopping.set()
