"""Packet captures inside nodes (docs/messages.md, Captures): tcpdump on one interface of
a node, bounded in size and time, its file sent to the control plane through Redis when
it ends, so the host needs no inbound port.

tcpdump is the host's (`/usr/bin/tcpdump`): it joins only the node's network namespace
and the node's cgroup, so it needs nothing from the node's root tree, and tearing the
lab down (or the sweep) kills it with the node's other processes. Its file lives on the
deployment's tmpfs (`<data>/run/<token>/captures/`), which teardown unmounts. No user
text reaches a shell: the interface must be one the plan gives the node, the filter is
one argument after `--`, compiled first with `tcpdump -d` so a bad one is refused with
its message.

While it runs, a watcher thread counts the whole pcap records written, sends
`labmgr.control.capture_progress` about every second, and stops tcpdump when a bound is
reached or a stop is asked for. At the end it keeps the whole records within the size
bound, pushes them in chunks on `labmgr:capture:<id>:pcap` and sends
`labmgr.control.capture_finished` with the number of chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from labplan import envelope, naming, ops
from workers.celery_app import redis_client_url, redis_url
from workers.executor import ApplyError, decode
from workers.kernel import syscalls
from workers.kernel.cgroups import Cgroups
from workers.kernel.processes import start_time
from workers.reports import Send

log = logging.getLogger("labmgr.agent")

TCPDUMP = "/usr/bin/tcpdump"
# Ids come from the control plane and name files: a random token, nothing else.
CAPTURE_ID = re.compile(r"^[a-z0-9]{8,64}$")
IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
MAX_FILTER = 1024
# Hard bounds whatever the control plane asks: the file sits on the deployment's tmpfs.
MAX_BYTES = 64 << 20
MAX_SECONDS = 24 * 3600
CHUNK = 256 << 10  # bytes per Redis list item
KEY_TTL = 3600  # seconds the chunks wait for the control plane
POLL = 0.2  # how often the watcher reads the file and the clock
REPORT_EVERY = 1.0
START_TIMEOUT = 5.0  # tcpdump has opened the interface and created its file by then
COMPILE_TIMEOUT = 10.0
BACKSTOP_SECONDS = 5

PCAP_HEADER = 24
RECORD_HEADER = 16
# Magic numbers of pcap files (microsecond and nanosecond), as bytes on disk.
BYTE_ORDERS = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",
}


def pcap_key(capture: str) -> str:
    return f"labmgr:capture:{capture}:pcap"


# --- counting whole records of a growing pcap file -------------------------------------


class PcapCounter:
    """Whole records of a pcap file that is still being written: how many, where the last
    one ends, and the same within a size bound (a record cut by the writer, or by a
    kill, is not counted until it is whole)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.order: str | None = None
        self.end = 0  # file offset after the last whole record (or the header)
        self.packets = 0
        self.kept_end = 0  # the same, counting only records that end within `limit`
        self.kept_packets = 0

    def feed(self, read: Callable[[int, int], bytes], size: int) -> None:
        """Read what was added since the last call; `read(length, offset)`."""
        if self.order is None:
            if size < PCAP_HEADER:
                return
            header = read(PCAP_HEADER, 0)
            self.order = BYTE_ORDERS.get(header[:4])
            if self.order is None:
                raise ValueError("not a pcap file")
            self.end = PCAP_HEADER
            self._keep()
        if size <= self.end:
            return
        data = read(size - self.end, self.end)
        view, position = memoryview(data), 0
        while position + RECORD_HEADER <= len(view):
            (captured,) = struct.unpack_from(self.order + "I", view, position + 8)
            following = position + RECORD_HEADER + captured
            if following > len(view):
                break
            position = following
            self.packets += 1
            self.end += RECORD_HEADER + captured
            self._keep()

    def _keep(self) -> None:
        if self.end <= self.limit:
            self.kept_end, self.kept_packets = self.end, self.packets


def count_packets(data: bytes) -> int:
    """The whole records of a pcap file's bytes."""
    counter = PcapCounter(len(data))
    counter.feed(lambda length, offset: data[offset : offset + length], len(data))
    return counter.packets


# --- one capture -----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A capture asked for, already checked."""

    capture: str
    token: str
    node: str
    interface: str
    filter: str
    max_bytes: int
    max_seconds: float


class Upload(Protocol):
    def __call__(self, capture: str, chunks: Sequence[bytes]) -> None: ...


class RedisUpload:
    """Chunks on `labmgr:capture:<id>:pcap`, the key expiring if nobody takes them."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(redis_client_url(url))

    def __call__(self, capture: str, chunks: Sequence[bytes]) -> None:
        key = pcap_key(capture)
        pipe = self.client.pipeline()
        pipe.delete(key)
        for chunk in chunks:
            pipe.rpush(key, chunk)
        pipe.expire(key, KEY_TTL)
        pipe.execute()


class Capture(threading.Thread):
    """A running tcpdump and its watcher."""

    def __init__(
        self,
        request: Request,
        proc: subprocess.Popen[bytes],
        files: tuple[Path, Path],
        send: Send,
        upload: Upload,
        report_every: float = REPORT_EVERY,
        progress: Send | None = None,
    ) -> None:
        super().__init__(name=f"capture-{request.capture}", daemon=True)
        self.request, self.proc, self.send, self.upload = request, proc, send, upload
        # Progress must never block the watcher (its bounds): a send that gives up.
        self.progress_send = progress or send
        self.path, self.log_path = files
        self.report_every = report_every
        self.counter = PcapCounter(request.max_bytes)
        self.stopping = threading.Event()
        self.reason = ""
        self.fd = -1

    def stop(self, reason: str = "stopped on request") -> None:
        if not self.stopping.is_set():
            self.reason = reason
            self.stopping.set()

    def run(self) -> None:
        try:
            state, reason = self._watch()
        except Exception as exc:  # a bug: the control plane must still hear the end
            log.exception("capture %s failed", self.request.capture)
            self._end_process()
            state, reason = "failed", f"the capture failed: {type(exc).__name__}: {exc}"
        self._finish(state, reason)

    def _watch(self) -> tuple[str, str]:
        self.fd = os.open(self.path, os.O_RDONLY)
        started = time.monotonic()
        reported = 0.0
        while True:
            exited = self.proc.poll() is not None
            self._read()
            if exited:
                return self._ended_by_itself()
            if self.stopping.is_set():
                break
            if self.counter.end >= self.request.max_bytes:
                self.reason = f"size limit reached ({self.request.max_bytes} bytes)"
                break
            if time.monotonic() - started >= self.request.max_seconds:
                self.reason = f"time limit reached ({self.request.max_seconds:g} s)"
                break
            if time.monotonic() - reported >= self.report_every:
                reported = time.monotonic()
                self._progress()
            self.stopping.wait(POLL)
        self._end_process()
        self._read()
        return "stopped", self.reason

    def _read(self) -> None:
        size = os.fstat(self.fd).st_size
        self.counter.feed(lambda length, offset: os.pread(self.fd, length, offset), size)

    def _ended_by_itself(self) -> tuple[str, str]:
        code = self.proc.returncode
        if code is not None and code <= 0:
            # Nobody asked it to stop: the node's cgroup was killed (or tcpdump was sent
            # a signal) because the lab was destroyed or the node replaced.
            return "stopped", "the node stopped (lab destroyed or node replaced)"
        message = _last_line(self.log_path)
        if "disappeared" in message or "went down" in message:
            return "stopped", f"the interface went away ({message})"
        return "failed", message or f"tcpdump exited with status {code}"

    def _end_process(self) -> None:
        """SIGTERM lets tcpdump flush and exit; a stuck one is killed."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()

    def _progress(self) -> None:
        with contextlib.suppress(Exception):  # a lost progress report is replaced soon
            self.progress_send(
                "labmgr.control.capture_progress",
                {
                    "capture": self.request.capture,
                    "state": "running",
                    "packets": self.counter.kept_packets,
                    "bytes": self.counter.kept_end,
                },
            )

    def _finish(self, state: str, reason: str) -> None:
        data = b""
        if self.fd >= 0:
            data = os.pread(self.fd, self.counter.kept_end, 0) if self.counter.kept_end else b""
            os.close(self.fd)
        for path in (self.path, self.log_path):
            with contextlib.suppress(OSError):
                path.unlink()
        chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
        try:
            self.upload(self.request.capture, chunks)
        except Exception as exc:
            log.warning("capture %s: file not sent", self.request.capture, exc_info=True)
            state, reason, chunks = "failed", f"the file could not be sent: {exc}", []
        self.send(
            "labmgr.control.capture_finished",
            {
                "capture": self.request.capture,
                "state": state,
                "packets": self.counter.kept_packets if chunks else 0,
                "bytes": len(data) if chunks else 0,
                "reason": reason,
                "chunks": len(chunks),
                # The chunks travel on Redis beside the signed report: the digest ties
                # them to it, so a file changed on the way is refused.
                "sha256": hashlib.sha256(data).hexdigest() if chunks else "",
            },
        )
        log.info("capture %s %s: %s", self.request.capture, state, reason)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").strip().splitlines()
        useful = [
            line for line in lines if not line.startswith(("listening on", "tcpdump: listening"))
        ]
        if useful:
            return useful[-1].removeprefix("tcpdump: ")[:500]
    return ""


# --- the captures of this agent --------------------------------------------------------


class CaptureRefused(Exception):
    """The capture cannot start; `field` names what was wrong in the request."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where tcpdump runs: the node's init (its network namespace), named by its pid and
    start time (clock ticks after boot), and cgroup."""

    pid: int
    start: int
    cgroup_procs: tuple[Path, ...]
    interfaces: tuple[str, ...]


Enter = Callable[[Target], Callable[[], None] | None]


def enter_node(target: Target) -> Callable[[], None]:
    """A pre-exec function moving the child into the node's cgroup and network namespace
    (only those: tcpdump and its file stay the host's).

    A pidfd pins the process the pid names; its start time must be the init's (so it is
    the init: the pid was never free in between), and setns on the pidfd enters that very
    process's namespace, or fails once it has exited. A process that reused the pid of a
    gone init is never entered: the child fails before tcpdump runs."""

    def enter() -> None:
        pidfd = os.pidfd_open(target.pid)
        try:
            if start_time(target.pid) != target.start:
                raise ProcessLookupError(f"the init of pid {target.pid} is gone")
            for procs in target.cgroup_procs:
                with open(procs, "w") as handle:
                    handle.write(str(os.getpid()))
            syscalls.setns(pidfd, syscalls.CLONE_NEWNET)
        finally:
            os.close(pidfd)

    return enter


class Captures:
    """The running captures of this agent, by id."""

    def __init__(
        self,
        data_dir: Path,
        send: Send,
        upload: Upload,
        *,
        tcpdump: Sequence[str] = (TCPDUMP,),
        enter: Enter = enter_node,
        report_every: float = REPORT_EVERY,
        progress: Send | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.send = send
        self.progress = progress
        self.upload = upload
        self.tcpdump = list(tcpdump)
        self.enter = enter
        self.report_every = report_every
        self.running: dict[str, Capture] = {}
        self._lock = threading.Lock()

    def directory(self, token: str) -> Path:
        return self.data_dir / "run" / token / "captures"

    def start(self, request: Request, target: Target) -> None:
        """Start tcpdump, or raise CaptureRefused saying which field is wrong."""
        check(request, target)
        with self._lock:
            self._forget_ended()
            if request.capture in self.running:
                return  # a duplicate delivery: it runs already
            preexec = self.enter(target)
            self._compile(request, preexec)
            capture = self._launch(request, preexec)
            self.running[request.capture] = capture
        capture.start()
        log.info(
            "capture %s started on %s of %s in %s",
            request.capture,
            request.interface,
            request.node,
            request.token,
        )

    def _compile(self, request: Request, preexec: Callable[[], None] | None) -> None:
        argv = [*self.tcpdump, "-d", "-i", request.interface, "--", request.filter]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=COMPILE_TIMEOUT,
                preexec_fn=preexec,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise CaptureRefused("interface", f"tcpdump could not run: {exc}") from exc
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            text = (message[-1] if message else "refused").removeprefix("tcpdump: ")
            field = "filter" if "filter" in text or "syntax" in text else "interface"
            raise CaptureRefused(field, text[:500])

    def _launch(self, request: Request, preexec: Callable[[], None] | None) -> Capture:
        directory = self.directory(request.token)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{request.capture}.pcap"
        log_path = directory / f"{request.capture}.log"
        argv = [*self.tcpdump, "-i", request.interface, "-w", str(path), "-U", "-n"]
        # A second time bound in tcpdump itself (checked as packets arrive), a little
        # after the watcher's, should the watcher be gone.
        backstop = int(request.max_seconds) + BACKSTOP_SECONDS
        argv += ["--immediate-mode", "-Z", "root", "-G", str(backstop), "-W", "1"]
        argv += ["--", request.filter]
        with open(log_path, "wb") as errors:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                preexec_fn=preexec,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                message = _last_line(log_path) or "tcpdump did not start"
                with contextlib.suppress(OSError):
                    log_path.unlink()
                raise CaptureRefused("interface", message)
            time.sleep(0.02)
        files = (path, log_path)
        return Capture(
            request, proc, files, self.send, self.upload, self.report_every, self.progress
        )

    def stop(self, capture: str) -> bool:
        """Ask a capture to stop; False if this agent has no such capture running."""
        with self._lock:
            running = self.running.get(capture)
        if running is None or not running.is_alive():
            return False
        running.stop()
        return True

    def knows(self, capture: str) -> bool:
        """Whether this agent started the capture (it may have ended since)."""
        with self._lock:
            return capture in self.running

    def stop_all(self, wait: float = 5.0) -> None:
        with self._lock:
            doomed = list(self.running.values())
        for capture in doomed:
            capture.stop("the agent stopped")
        for capture in doomed:
            capture.join(timeout=wait)

    def reap_orphans(self) -> list[str]:
        """Kill the tcpdumps a previous run of the agent left without a watcher (nothing
        would bound them) and remove their files; what was reaped."""
        reaped: list[str] = []
        marker = str(self.data_dir / "run") + "/"
        for pid, argv in _processes():
            if not argv or Path(argv[0]).name != "tcpdump" or "-w" not in argv[:-1]:
                continue
            output = argv[argv.index("-w") + 1]
            if output.startswith(marker) and "/captures/" in output:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                reaped.append(f"tcpdump {pid} writing {output}")
        for path in self.data_dir.glob("run/*/captures/*"):
            with contextlib.suppress(OSError):
                path.unlink()
        return reaped

    def _forget_ended(self) -> None:
        for name in [n for n, c in self.running.items() if c.ident and not c.is_alive()]:
            del self.running[name]


def _processes() -> list[tuple[int, list[str]]]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        found.append((int(name), [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]))
    return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def check(request: Request, target: Target) -> None:
    """Refuse what the control plane should never have sent (it checks the same)."""
    if not CAPTURE_ID.match(request.capture):
        raise CaptureRefused("capture", "the capture id is not a token")
    if not IFNAME.match(request.interface) or request.interface not in target.interfaces:
        names = ", ".join(target.interfaces) or "none"
        raise CaptureRefused(
            "interface",
            f"node {request.node} has no interface {request.interface!r} (it has: {names})",
        )
    if len(request.filter) > MAX_FILTER or any(ord(c) < 32 for c in request.filter):
        raise CaptureRefused("filter", f"a filter is one line of at most {MAX_FILTER} characters")
    if not 0 < request.max_bytes <= MAX_BYTES:
        raise CaptureRefused("max_bytes", f"the size bound is 1 to {MAX_BYTES} bytes")
    if not 0 < request.max_seconds <= MAX_SECONDS:
        raise CaptureRefused("max_seconds", f"the time bound is 1 to {MAX_SECONDS} seconds")


# --- the agent's tasks -----------------------------------------------------------------


class Journal(Protocol):
    def read(self, token: str) -> Any: ...


class AgentLike(Protocol):
    """What the capture tasks need of `workers.tasks.Agent`."""

    send: Send

    @property
    def executor(self) -> Any: ...


def node_target(journal: Journal, token: str, node: str) -> Target | None:
    """The running node's init, cgroup and the interfaces its plan gives it; None if the
    node does not run here or shares the host's network namespace."""
    record = journal.read(token)
    if record is None or node not in record.nodes:
        return None
    try:
        plan = decode(record.header["plan"]).for_host(record.header["host"])
    except ApplyError:
        return None
    if plan is None:
        return None
    spawn = next((o for o in plan.ops if isinstance(o, ops.SpawnNode) and o.node == node), None)
    if spawn is None or spawn.netns is None:
        return None
    return Target(
        pid=record.nodes[node].pid,
        start=record.nodes[node].start,
        cgroup_procs=tuple(Cgroups().procs_files(spawn.cgroup)),
        interfaces=interfaces_in(plan.ops, spawn.netns),
    )


def interfaces_in(plan_ops: Sequence[ops.Op], netns: str) -> tuple[str, ...]:
    """The names the plan gives links inside `netns`, in plan order."""
    names: list[str] = []
    for op in plan_ops:
        if isinstance(op, ops.CreateVethPair) and op.peer_netns == netns:
            names.append(op.peer_ifname)
        elif isinstance(op, ops.CreateMacvlan | ops.CreateIpvlan) and op.netns == netns:
            names.append(op.ifname)
    return tuple(names)


def capture_start(
    captures: Captures,
    journal: Journal,
    *,
    capture: str,
    deployment: int,
    token: str,
    node: str,
    interface: str,
    filter: str,
    max_bytes: int,
    max_seconds: float,
) -> dict[str, Any]:
    """The `labmgr.agent.capture_start` job: `{ok, field, error}`."""
    target = (
        node_target(journal, token, node) if token == naming.deployment_token(deployment) else None
    )
    if target is None:
        return {"ok": False, "field": "node", "error": f"no running node {node!r} in {token}"}
    if start_time(target.pid) != target.start:  # enter_node checks again, by pidfd
        error = f"node {node!r} of {token} is not running: its init is gone"
        return {"ok": False, "field": "node", "error": error}
    request = Request(capture, token, node, interface, filter, int(max_bytes), float(max_seconds))
    try:
        captures.start(request, target)
    except CaptureRefused as exc:
        return {"ok": False, "field": exc.field, "error": exc.message}
    return {"ok": True, "field": "", "error": ""}


def capture_stop(captures: Captures, *, capture: str) -> None:
    """The `labmgr.agent.capture_stop` job. A capture this agent does not run (it
    restarted, or the capture ended already) is reported ended, so nothing waits."""
    if not captures.stop(capture) and not captures.knows(capture):
        captures.send(
            "labmgr.control.capture_finished",
            {
                "capture": capture,
                "state": "failed",
                "packets": 0,
                "bytes": 0,
                "reason": "this host runs no such capture (its agent restarted?)",
                "chunks": 0,
            },
        )


class Guard(Protocol):
    """Opens a capture job's message (workers.tasks.Inbox): its verified arguments and
    envelope, or None when it is refused."""

    def open(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any: ...
    def once(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any: ...
    def answer(self, task: str, request_id: str, value: Any) -> dict[str, Any]: ...


def register(
    app: Any,
    agent: AgentLike,
    *,
    inbox: Guard,
    progress: Send,
    captures: Captures | None = None,
) -> Captures:
    """Bind the capture jobs to `app` under the names of docs/messages.md; `progress`
    sends the frequent reports that a newer one soon replaces (no retry)."""
    if captures is None:
        captures = Captures(
            agent.executor.data_dir, agent.send, RedisUpload(redis_url()), progress=progress
        )
    for line in captures.reap_orphans():
        log.info("capture: reaped %s", line)
    running = captures
    journal = agent.executor.journal

    def start(self: Any, **kwargs: Any) -> dict[str, Any]:
        name = "labmgr.agent.capture_start"
        opened = inbox.once(name, self.request.id, kwargs)
        if opened is None:
            return {"refused": "the agent refused the message (see its log)"}
        arguments = opened[0]
        if not envelope.STREAM_ID_RE.fullmatch(str(arguments.get("capture", ""))):
            value = {"ok": False, "field": "capture", "error": "not an unguessable capture id"}
        else:
            value = capture_start(running, journal, **arguments)
        return inbox.answer(name, self.request.id, value)

    def stop(self: Any, **kwargs: Any) -> None:
        opened = inbox.once("labmgr.agent.capture_stop", self.request.id, kwargs)
        if opened is not None:
            capture_stop(running, **opened[0])

    app.task(name="labmgr.agent.capture_start", bind=True)(start)
    app.task(name="labmgr.agent.capture_stop", bind=True, ignore_result=True)(stop)
    return running
