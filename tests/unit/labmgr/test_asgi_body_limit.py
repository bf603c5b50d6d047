"""The body size limit holds while the body arrives, against a real uvicorn serving
labmgr.asgi: a 50 MiB chunked upload is answered 413 after about 1 MiB and the rest is
never read; a Content-Length over the limit is refused before any of the body is sent."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024
BODY = 50 * MIB
CHUNK = 64 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, int]]:
    """uvicorn on a free port of 127.0.0.1: (port, pid)."""
    data = Path(tempfile.mkdtemp(prefix="labmgr-body-limit-"))
    env = {
        **os.environ,
        "LABMGR_DATA_DIR": str(data),
        "LABMGR_CHANNEL_LAYER": "memory",
        "DJANGO_SETTINGS_MODULE": "labmgr.settings",
    }
    env.pop("DATABASE_URL", None)  # no query is made: a 413 or a 401 comes first
    port = _free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "labmgr.asgi:application", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (data / "server.log").read_text()
            try:
                status, _ = _request(port, b"GET /api/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert status == 401
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not answer within 30 s"
                time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the response's headers: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), body


def _request(port: int, raw: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        return _read_response(sock)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


class Uploader(threading.Thread):
    """Sends `total` bytes of chunked body, made chunk by chunk as it goes, until the
    server stops taking them; `sent` counts what the socket accepted."""

    def __init__(self, sock: socket.socket, total: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.total = sock, total
        self.sent = 0

    def run(self) -> None:
        frame = b"%x\r\n%s\r\n" % (CHUNK, b"x" * CHUNK)
        try:
            while self.sent < self.total:
                self.sock.sendall(frame)
                self.sent += CHUNK
            self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: what the limit is for


def test_a_chunked_body_is_refused_while_it_arrives(server: tuple[int, int]) -> None:
    port, pid = server
    rss_before = _peak_rss(pid)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /api/labs/import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/yaml\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    uploader = Uploader(sock, BODY)
    uploader.start()
    try:
        status, body = _read_response(sock)
        sent_when_answered = uploader.sent
    finally:
        uploader.join(timeout=30)
        sock.close()
    assert status == 413
    assert json.loads(body) == {
        "detail": "The request body is larger than the limit of 1048576 bytes (1 MiB).",
        "errors": {},
    }
    # What the socket buffers of both ends hold is all that was sent past the limit.
    assert sent_when_answered < BODY // 4
    assert not uploader.is_alive()
    assert uploader.sent < BODY // 4, "the server went on reading the body after answering"
    assert _peak_rss(pid) - rss_before < 16 * MIB


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    server: tuple[int, int],
) -> None:
    port, _ = server
    status, body = _request(
        port,
        b"POST /api/labs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % BODY,
    )
    assert status == 413
    assert json.loads(body)["detail"].startswith("The request body is larger than the limit")


def test_a_page_gets_the_sentence_and_a_small_body_passes(server: tuple[int, int]) -> None:
    port, _ = server
    status, body = _request(
        port,
        b"POST /labs/validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
        % (2 * MIB),
    )
    assert (status, body) == (
        413,
        b"The request body is larger than the limit of 1048576 bytes (1 MiB).",
    )
    small = b"labfile: 1\n"
    status, _ = _request(
        port,
        b"POST /api/labs/import HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"
        % (len(small), small),
    )
    assert status == 401  # through the limit, to DRF, which asks for credentials
