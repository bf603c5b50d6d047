"""`labmgr shell LAB NODE`: this terminal joined to a shell on a pty in the node, over the
server's terminal websocket (the one the browser's terminal uses), with the token.

Keystrokes go as binary frames and the window size as `{"resize": [cols, rows]}`; the
node's output comes back as binary frames. With a terminal on standard input it is put in
raw mode (so Ctrl-C, arrows and tab reach the node's shell) and restored on the way out;
without one, standard input is sent as it comes and the session ends when the node's
shell does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from labcli.client import CliError

REFUSED = 4403  # the server's close code for "not yours, or not running"
READ_SIZE = 4096


def terminal_url(server: str, lab: int, node: str, cols: int, rows: int) -> str:
    """The node's terminal websocket on `server` (ws for http, wss for https)."""
    parts = urlsplit(server.rstrip("/"))
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = f"{parts.path}/ws/labs/{lab}/nodes/{node}/terminal"
    return urlunsplit((scheme, parts.netloc, path, f"cols={cols}&rows={rows}", ""))


def window() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.columns, size.lines


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The terminal on `fd` in raw mode for the block, as it was after; nothing when `fd`
    is not a terminal."""
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def refusal(lab: dict[str, Any], node: str) -> CliError:
    return CliError(
        f"node: {node!r} of {lab['name']!r} has no terminal for you: the lab is not "
        "running, it has no such node, or it is not yours."
    )


def open_terminal(server: str, token: str, lab: dict[str, Any], node: str) -> ClientConnection:
    cols, rows = window()
    try:
        return connect(
            terminal_url(server, int(lab["id"]), node, cols, rows),
            additional_headers={"Authorization": f"Token {token}", "Origin": server},
            open_timeout=15,
            max_size=None,
        )
    except InvalidStatus as refused:
        if refused.response.status_code == 403:
            raise refusal(lab, node) from None
        status = refused.response.status_code
        raise CliError(f"the server refused the terminal ({status}).") from None
    except (InvalidURI, OSError, TimeoutError):
        raise CliError(f"cannot reach {server}", 2) from None


def run_shell(server: str, token: str, lab: dict[str, Any], node: str) -> int:
    """Join this terminal to `node` of `lab` until the session ends: the node's shell
    exits, the lab stops, or the server closes it (0)."""
    socket = open_terminal(server, token, lab, node)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()

    def keys() -> None:
        while True:
            try:
                data = os.read(stdin, READ_SIZE)
            except OSError:
                return
            if not data:
                return  # standard input ended: the node's shell still has the word
            try:
                socket.send(data)
            except ConnectionClosed:
                return

    def resized(*_: object) -> None:
        cols, rows = window()
        with suppress(ConnectionClosed):
            socket.send(json.dumps({"resize": [cols, rows]}))

    previous = signal.signal(signal.SIGWINCH, resized) if os.isatty(stdin) else None
    try:
        with raw_mode(stdin):
            threading.Thread(target=keys, daemon=True).start()
            try:
                for frame in socket:
                    os.write(stdout, frame if isinstance(frame, bytes) else frame.encode())
            except ConnectionClosed:
                pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        socket.close()
    if socket.close_code == REFUSED:
        raise refusal(lab, node)
    return 0
