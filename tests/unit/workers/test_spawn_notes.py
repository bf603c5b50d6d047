"""What `lminit spawn` prints is read back by `Processes`: the init's pid, and notes a user
should see about the node (its host tree left read-only, and why), on the started node."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from workers.driver import NodeProcess
from workers.kernel.processes import Processes, SpawnError, start_time


def finished(out: str = "", err: str = "", returncode: int = 0) -> subprocess.Popen[bytes]:
    """A process that printed what lminit spawn would, then exited."""
    script = 'printf "%s" "$1"; printf "%s" "$2" >&2; exit "$3"'
    argv = ["sh", "-c", script, "sh", out, err, str(returncode)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def collect(processes: Processes, node: str, proc: subprocess.Popen[bytes]) -> Any:
    results: dict[int, NodeProcess] = {}
    failures: dict[int, SpawnError] = {}
    start: Any = SimpleNamespace(op=SimpleNamespace(node=node))
    processes._collect(0, start, proc, results, failures)
    return results.get(0) or failures.get(0)


def test_a_note_from_lminit_is_kept_for_its_node(tmp_path: Path) -> None:
    processes = Processes(tmp_path / "lminit", tmp_path)
    note = "the host's tree is read-only to this node: idmapped layers are turned off"

    started = collect(processes, "box", finished(f"{os.getpid()}\nnote {note}\n"))

    assert started == NodeProcess(os.getpid(), start_time(os.getpid()) or -1)
    assert started.note == note


def test_a_node_started_again_without_a_note_has_none(tmp_path: Path) -> None:
    processes = Processes(tmp_path / "lminit", tmp_path)
    first = collect(processes, "box", finished(f"{os.getpid()}\nnote read-only\n"))

    again = collect(processes, "box", finished(f"{os.getpid()}\n"))

    assert (first.note, again.note) == ("read-only", "")


def test_a_spawn_that_failed_is_reported_with_lminits_reason(tmp_path: Path) -> None:
    processes = Processes(tmp_path / "lminit", tmp_path)

    spawn = finished(err="lminit: mount overlay on /x: EINVAL\n", returncode=125)

    failed = collect(processes, "box", spawn)

    assert str(failed) == "node box did not start: mount overlay on /x: EINVAL"
