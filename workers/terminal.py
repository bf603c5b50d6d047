"""Interactive shells inside nodes, relayed through Redis so the host needs no inbound
port (docs/messages.md, Terminals).

A session runs `/bin/sh -i` on a new pty inside the node (all its namespaces and its
cgroup, through `lminit exec`). The web side pushes keystrokes and `{"resize": [cols,
rows]}` frames on `labmgr:term:<session>:in`; the agent pushes the shell's output on
`labmgr:term:<session>:out`. An empty frame, either way, ends the session, as does the
shell exiting, the lab being destroyed, or no traffic for the idle timeout; both keys
expire after that timeout, so nothing is left in Redis by a browser that went away.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import redis

from labplan import ops
from labplan.messages import terminal_keys
from workers.celery_app import redis_client_url
from workers.driver import NodeProcess
from workers.init.build import lminit_path
from workers.kernel.cgroups import Cgroups
from workers.kernel.processes import Processes

log = logging.getLogger("labmgr.agent")

IDLE_TIMEOUT = 900.0  # seconds without a keystroke or output
POLL = 0.5  # how often the input loop looks at the clock and the shell
MAX_FRAME = 1 << 16


def resize_of(frame: bytes) -> tuple[int, int] | None:
    """The (cols, rows) of a resize control frame, None for keystrokes."""
    if not frame.startswith(b'{"resize"'):
        return None
    with contextlib.suppress(ValueError, TypeError):
        data = json.loads(frame)
        cols, rows = data["resize"]
        if isinstance(cols, int) and isinstance(rows, int) and 0 < cols < 1000 and 0 < rows < 1000:
            return cols, rows
    return None


def set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Session:
    """One shell and its relay: an input loop (this object's thread) and an output pump."""

    def __init__(
        self,
        client: redis.Redis,
        session: str,
        token: str,
        shell: tuple[int, subprocess.Popen[bytes]],
        idle: float,
    ) -> None:
        self.client = client
        self.session = session
        self.token = token
        self.in_key, self.out_key = terminal_keys(session)
        self.master, self.proc = shell
        self.idle = idle
        self.last = time.monotonic()
        self.closing = threading.Event()
        self._ended = threading.Lock()
        self.threads = [
            threading.Thread(target=self._input, name=f"term-in-{session}", daemon=True),
            threading.Thread(target=self._output, name=f"term-out-{session}", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _input(self) -> None:
        while not self.closing.is_set():
            if time.monotonic() - self.last > self.idle or self.proc.poll() is not None:
                break
            try:
                popped = self.client.blpop([self.in_key], timeout=POLL)
            except redis.RedisError:
                self.closing.wait(POLL)  # Redis away: keep the shell, try again
                continue
            if popped is None:
                continue
            raw = popped[1]
            frame = raw.encode() if isinstance(raw, str) else bytes(raw)
            if frame == b"":
                break
            self.last = time.monotonic()
            size = resize_of(frame)
            if size is not None:
                set_size(self.master, *size)
                continue
            with contextlib.suppress(OSError):
                os.write(self.master, frame)
        self.close()

    def _output(self) -> None:
        while not self.closing.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], POLL)
                data = os.read(self.master, MAX_FRAME) if ready else None
            except OSError:  # EIO: the shell and everything on its pty are gone
                break
            if data is None:
                continue
            if not data:
                break
            self.last = time.monotonic()
            self._push(data)
        self.close()

    def _push(self, frame: bytes, attempts: int = 20) -> None:
        """Push a frame and refresh both keys' expiry; while Redis is away, wait a while,
        then drop the frame rather than stall the shell forever."""
        for _ in range(attempts):
            try:
                pipe = self.client.pipeline()
                pipe.rpush(self.out_key, frame)
                pipe.expire(self.out_key, int(self.idle))
                pipe.expire(self.in_key, int(self.idle))
                pipe.execute()
                return
            except redis.RedisError:
                time.sleep(POLL)

    def close(self) -> None:
        """End the session: the pty hangs up, so the shell (which leads its own session
        inside the node) gets SIGHUP; the web side gets an empty frame."""
        if not self._ended.acquire(blocking=False):
            return
        self.closing.set()
        # The pump may be in select() on the pty: let it leave before the fd is closed,
        # or the number could be reused under it.
        pump = self.threads[1]
        if pump.is_alive() and pump is not threading.current_thread():
            pump.join(timeout=2 * POLL)
        with contextlib.suppress(OSError):
            os.close(self.master)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGHUP)
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._push(b"")
        log.info("terminal %s closed", self.session)


class Terminals:
    """The open sessions of this agent."""

    def __init__(self, redis_url: str, data_dir: Path, idle: float = IDLE_TIMEOUT) -> None:
        self.client = redis.Redis.from_url(redis_client_url(redis_url))
        self.data_dir = data_dir
        self.idle = idle
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(
        self, session: str, init: NodeProcess, spawn: ops.SpawnNode, cols: int, rows: int
    ) -> None:
        """Start a shell in the node whose init is `init` (lminit refuses, and the session
        ends at once, if that init is gone, whoever has its pid now)."""
        with self._lock:
            self._forget_closed()
            if session in self.sessions:
                return  # a duplicate delivery: the session already runs
            processes = Processes(lminit_path(self.data_dir), self.data_dir)
            env = {"HOSTNAME": spawn.hostname, **dict(spawn.environment)}
            master, proc = processes.shell(
                init, Cgroups().procs_files(spawn.cgroup), env, controlling_tty=True
            )
            set_size(master, cols, rows)
            token = spawn.cgroup.split("/", 1)[0]
            opened = Session(self.client, session, token, (master, proc), self.idle)
            self.sessions[session] = opened
        opened.start()
        log.info("terminal %s opened in %s of %s", session, spawn.node, token)

    def _forget_closed(self) -> None:
        for name in [n for n, s in self.sessions.items() if s.closing.is_set()]:
            del self.sessions[name]

    def close_token(self, token: str) -> None:
        with self._lock:
            doomed = [s for s in self.sessions.values() if s.token == token]
        for session in doomed:
            session.close()

    def close_all(self) -> None:
        with self._lock:
            doomed = list(self.sessions.values())
        for session in doomed:
            session.close()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._forget_closed()
            return {"open": len(self.sessions)}
