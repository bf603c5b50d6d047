"""One running capture: tcpdump and the watcher thread that counts its packets, reports
them about every second, stops it at its bounds or when asked, and at the end sends the
whole records within the size bound through Redis with `labmgr.control.capture_finished`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import redis

from labplan.messages import CaptureFinishedArgs, CaptureProgressArgs, ControlTask, pcap_key
from workers.capture.pcap import PcapCounter
from workers.celery_app import redis_client_url
from workers.reports import Send

log = logging.getLogger("labmgr.agent")

CHUNK = 256 << 10  # bytes per Redis list item
KEY_TTL = 3600  # seconds the chunks wait for the control plane
POLL = 0.2  # how often the watcher reads the file and the clock
REPORT_EVERY = 1.0

Ended = Literal["stopped", "failed"]  # how a capture ended (its `capture_finished`)


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

    def _watch(self) -> tuple[Ended, str]:
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

    def _ended_by_itself(self) -> tuple[Ended, str]:
        code = self.proc.returncode
        if code is not None and code <= 0:
            # Nobody asked it to stop: the node's cgroup was killed (or tcpdump was sent
            # a signal) because the lab was destroyed or the node replaced.
            return "stopped", "the node stopped (lab destroyed or node replaced)"
        message = last_line(self.log_path)
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
            progress: CaptureProgressArgs = {
                "capture": self.request.capture,
                "state": "running",
                "packets": self.counter.kept_packets,
                "bytes": self.counter.kept_end,
            }
            self.progress_send(ControlTask.CAPTURE_PROGRESS, progress)

    def _finish(self, state: Ended, reason: str) -> None:
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
        finished: CaptureFinishedArgs = {
            "capture": self.request.capture,
            "state": state,
            "packets": self.counter.kept_packets if chunks else 0,
            "bytes": len(data) if chunks else 0,
            "reason": reason,
            "chunks": len(chunks),
            # The chunks travel on Redis beside the signed report: the digest ties
            # them to it, so a file changed on the way is refused.
            "sha256": hashlib.sha256(data).hexdigest() if chunks else "",
        }
        self.send(ControlTask.CAPTURE_FINISHED, finished)
        log.info("capture %s %s: %s", self.request.capture, state, reason)


def last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").strip().splitlines()
        useful = [
            line for line in lines if not line.startswith(("listening on", "tcpdump: listening"))
        ]
        if useful:
            return useful[-1].removeprefix("tcpdump: ")[:500]
    return ""
