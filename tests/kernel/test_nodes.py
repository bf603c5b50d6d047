"""What a node is, seen from inside: its namespaces, its init, its cgroup limits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from workers.kernel import processes
from workers.kernel.cgroups import Cgroups

from .conftest import PYTHON, Lab


@pytest.fixture
def pair(build: Any) -> Lab:
    lab: Lab = build(
        {
            "labfile": 1,
            "name": "pair",
            "networks": {"lan": {"driver": "bridge", "subnet": "10.235.0.0/24"}},
            "nodes": {
                "alpha": {"networks": {"lan": {}}, "command": ["sleep", "4242"]},
                "beta": {"networks": {"lan": {}}, "command": ["sleep", "4343"]},
            },
        }
    )
    return lab


def test_pid_1_is_the_init_and_runs_the_command(pair: Lab) -> None:
    assert "lminit" in pair.run("alpha", "cat", "/proc/1/cmdline").stdout
    assert "sleep 4242" in pair.run("alpha", "ps", "-eo", "pid,args").stdout


def test_another_nodes_processes_and_ipc_objects_are_invisible(pair: Lab) -> None:
    assert "sleep 4343" not in pair.run("alpha", "ps", "-eo", "args").stdout
    assert pair.run("beta", "ipcmk", "-M", "4096").returncode == 0

    assert "0x" not in pair.run("alpha", "ipcs", "-m").stdout
    assert "0x" in pair.run("beta", "ipcs", "-m").stdout


def test_the_hostname_and_hosts_file_are_the_nodes(pair: Lab) -> None:
    assert pair.run("alpha", "hostname").stdout.strip() == "alpha"
    hosts = pair.run("alpha", "cat", "/etc/hosts").stdout
    assert "alpha" in hosts and "beta" in hosts


def test_proc_self_cgroup_is_the_root_inside(pair: Lab) -> None:
    lines = pair.run("alpha", "cat", "/proc/self/cgroup").stdout.splitlines()

    assert lines and all(line.endswith(":/") for line in lines)


def test_root_inside_is_not_root_outside(pair: Lab) -> None:
    assert pair.run("alpha", "id", "-u").stdout.strip() == "0"
    status = Path(f"/proc/{pair.pid('alpha')}/status").read_text()
    outside = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert outside >= processes.UID_FIRST


def test_tmp_and_the_host_tree_writes_are_private_to_the_node(pair: Lab) -> None:
    assert pair.run("alpha", "sh", "-c", "echo hi > /tmp/x && cat /tmp/x").stdout == "hi\n"
    assert pair.run("beta", "cat", "/tmp/x").returncode != 0
    # The node's root owns its /etc in its own layer (not the host's files in it).
    assert pair.run("alpha", "touch", "/etc/labmgr-test").returncode == 0
    assert pair.run("beta", "cat", "/etc/labmgr-test").returncode != 0
    assert not Path("/etc/labmgr-test").exists()


def limited(limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "limited",
        "networks": {"isolated": {"driver": "none"}},
        "nodes": {"box": {"networks": {"isolated": {}}, "limits": limits}},
    }


def test_memory_max_kills_an_allocation_beyond_it(build: Any) -> None:
    lab: Lab = build(limited({"memory": "64M"}))

    small = lab.run("box", PYTHON, "-c", "b = bytearray(16 << 20); print('ok')")
    big = lab.run("box", PYTHON, "-c", "b = bytearray(256 << 20); b[::4096] = b'x' * 65536")

    assert small.stdout == "ok\n"
    assert big.returncode == 137  # SIGKILL from the OOM killer


FORK_BOMB = """
import os, time
refused = 0
for _ in range(60):
    try:
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
    except OSError:
        refused += 1
print(refused)
"""


def test_pids_max_stops_a_fork_bomb(build: Any) -> None:
    lab: Lab = build(limited({"pids": 20}))

    refused = int(lab.run("box", PYTHON, "-c", FORK_BOMB).stdout)

    assert refused >= 40


def test_a_cpu_quota_throttles(build: Any) -> None:
    lab: Lab = build(limited({"cpus": 0.2}))
    spin = "import time\nend = time.time() + 1\nwhile time.time() < end: pass"

    started = time.monotonic()
    lab.run("box", PYTHON, "-c", spin)
    assert time.monotonic() - started >= 1

    stat = Cgroups().read(lab.cgroup("box"), "cpu.stat") or ""
    throttled = dict(line.split() for line in stat.splitlines())
    assert int(throttled["nr_throttled"]) > 0
