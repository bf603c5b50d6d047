"""`python -m workers exec NAME NODE` without a command: a shell on a pty inside the
node, driven here the way a person at a terminal would."""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab

LAB = {
    "labfile": 1,
    "name": "shellcli",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.248.0.0/24"}},
    "nodes": {"box": {"networks": {"lan": {}}, "hostname": "boxhost"}},
}


def _as_a_background_job() -> None:
    """What `cmd &` in a script, or `nohup`, does to a program: these signals ignored,
    which an exec keeps (labmgr's own tiers and agents are often started that way)."""
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)


def _ignoring_every_signal() -> None:
    """Every signal the kernel lets a process ignore, ignored: the two the C library keeps
    for itself (32, 33) too, through the kernel's own call (rt_sigaction, 13 on x86-64)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ignore = (ctypes.c_ulong * 4)(1, 0, 0, 0)  # handler SIG_IGN, flags, restorer, mask
    for number in range(1, 65):
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            libc.syscall(13, number, ignore, None, 8)


class Terminal:
    """The CLI running with a pty of ours as its terminal, started as a background job
    would be."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "LABMGR_AGENT_DATA_DIR": str(data_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "exec", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_as_a_background_job,
            cwd=Path(__file__).parents[2],
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, pattern: bytes, timeout: float = 15) -> bytes:
        """Everything read so far once `pattern` (a regex) shows up, or at the end."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.seen):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"{pattern!r} not in {self.seen!r}")
            try:
                data = os.read(self.master, 4096)
            except OSError:
                data = b""  # EIO: the CLI closed its end
            if not data:
                raise AssertionError(f"{pattern!r} not in {self.seen!r} (terminal closed)")
            self.seen += data
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=15)
        finally:
            os.close(self.master)


def _in_the_foreground(lab: Lab, command: str) -> bool:
    found = lab.run(
        "box",
        "/bin/sh",
        "-c",
        f'for p in $(pgrep -x {command}); do cut -d" " -f5,8 /proc/$p/stat; done',
    )
    groups = [line.split() for line in found.stdout.splitlines()]
    return any(len(pair) == 2 and pair[0] == pair[1] for pair in groups)


@pytest.fixture
def box(build: Any) -> Lab:
    lab: Lab = build(LAB)
    return lab


def test_exec_without_a_command_opens_a_shell_inside_the_node(box: Lab, data_dir: Path) -> None:
    terminal = Terminal(data_dir, "shellcli", "box")
    terminal.read_until(rb"# $")  # the node's root prompt

    terminal.type("hostname; echo $$; exit\r")
    seen = terminal.read_until(rb"exit\r\n(.*\r\n){2}").decode()
    status = terminal.close()

    answers = seen.split("exit\r\n", 1)[1].split("\r\n")
    assert answers[0] == "boxhost"
    assert answers[1].isdigit() and int(answers[1]) > 1  # below the node's own init
    assert status == 0


def test_the_shells_exit_status_and_window_size_reach_the_caller(box: Lab, data_dir: Path) -> None:
    terminal = Terminal(data_dir, "shellcli", "box")
    fcntl.ioctl(terminal.master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    terminal.read_until(rb"# $")

    terminal.type("stty size; exit 7\r")

    assert b"33 111" in terminal.read_until(rb"33 111")
    assert terminal.close() == 7


def test_exec_names_a_node_that_does_not_exist(box: Lab, data_dir: Path) -> None:
    terminal = Terminal(data_dir, "shellcli", "nosuch")

    assert b"no running node 'nosuch' in 'shellcli'" in terminal.read_until(rb"shellcli'")
    assert terminal.close() == 1


def test_ctrl_c_interrupts_the_command_in_the_node_not_the_shell(box: Lab, data_dir: Path) -> None:
    terminal = Terminal(data_dir, "shellcli", "box")
    terminal.read_until(rb"# $")
    terminal.type("sleep 60\r")
    terminal.read_until(rb"sleep 60\r\n")
    # ^C must find sleep in the foreground: wait (a busy machine may take a while) until
    # sleep runs in the node and its process group is the one its terminal serves
    # (/proc/PID/stat: field 5 the process group, field 8 the terminal's foreground one).
    deadline = time.monotonic() + 15
    while not _in_the_foreground(box, "sleep"):
        assert time.monotonic() < deadline, "sleep never ran in the node's foreground"
        time.sleep(0.05)

    terminal.type("\x03")
    terminal.type("echo still here; exit\r")

    assert b"still here" in terminal.read_until(rb"still here\r\n")
    assert terminal.close() == 0


NODE_SIGIGN = ("grep", "SigIgn", "/proc/self/status")


def test_a_command_in_the_node_ignores_no_signal_its_caller_ignored(
    box: Lab, data_dir: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workers", "exec", "shellcli", "box", "--", *NODE_SIGIGN],
        env={**os.environ, "LABMGR_AGENT_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        preexec_fn=_ignoring_every_signal,
        cwd=Path(__file__).parents[2],
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SigIgn:", "0000000000000000"]
