"""The captures of this agent: a request checked against what the node's plan gives it,
tcpdump started inside the node's network namespace and cgroup (after compiling the
filter, so a bad one is refused with tcpdump's words), stopped on request, and the
tcpdumps a previous run of the agent left reaped."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.capture.watcher import REPORT_EVERY, Capture, Request, Upload, last_line
from workers.kernel import syscalls
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
START_TIMEOUT = 5.0  # tcpdump has opened the interface and created its file by then
COMPILE_TIMEOUT = 10.0
BACKSTOP_SECONDS = 5


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
                message = last_line(log_path) or "tcpdump did not start"
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
