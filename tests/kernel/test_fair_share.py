"""A lab cannot starve its host: a fork bomb or a memory hog in a node of a plain user's
shape (user namespace on, no limits of its own, no budget from the control plane) stops at
the `labmgr` parent's ceiling, the machine less the agent's reserve; meanwhile processes
outside labmgr fork, and the agent applies and destroys another lab; destroying the bomb's
lab kills all of it and leaves nothing.

The machine is made small for the test, from the start (the ceiling is on the parent
before the first node runs, and the test checks it there before starting any bomb): a
"machine" of 1 CPU, 512M and 300 processes less a reserve of half a CPU, 256M and 100
processes, so the bomb gets 0.5 CPU, 256M and 200 processes of this 2-core VM. Each test
has a parent cgroup of its own (`labmgrt<pid>...`), removed at the end."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labplan import naming
from labplan.messages import Budget, budget_for
from workers import config
from workers.executor import ApplyResult, Executor
from workers.kernel.ceiling import Machine, ceiling_of
from workers.kernel.cgroups import Cgroups
from workers.wiring import kernel_executor

from .conftest import PYTHON, compile_dict, new_deployment

MIB = 1 << 20
MACHINE = Machine(cpus=1, memory=512 * MIB, pids=300)
RESERVE = config.Reserve(config.Part(50, percent=True), config.Part(256 * MIB), config.Part(100))
CEILING = ceiling_of(MACHINE, RESERVE)  # 0.5 CPU, 256M, 200 processes

# dash looks up the special builtin `:` before a function of that name: a named bomb.
BOMB = "b(){ b|b& };b"
# Writes every byte of 400M (more than the ceiling), so every page is charged, then waits.
HOG = "import time; block = b'x' * (400 << 20); print('held', flush=True); time.sleep(60)"


def lab(name: str, command: list[str]) -> dict[str, Any]:
    """One node of a plain user's shape: every namespace, no limits; on a `none` network
    (loopback only), so nothing of it reaches the host's networks."""
    return {
        "labfile": 1,
        "name": name,
        "networks": {"n": {"driver": "none"}},
        "nodes": {"node": {"networks": {"n": {}}, "command": command}},
    }


@dataclass
class Host:
    """An agent's executor whose labs live under `parent`, held to `ceiling`."""

    executor: Executor
    parent: str
    cgroups: Callable[[], Cgroups]

    def dirs(self) -> list[Path]:
        return [h / self.parent for h in self.cgroups().layout.hierarchies()]

    def file(self, v2: str, v1: str, below: str = "") -> Path:
        """A file of the parent (or a cgroup below it), v2 name or v1 name."""
        for directory in self.dirs():
            for name in (v2, v1):
                if (directory / below / name).exists():
                    return directory / below / name
        raise AssertionError(f"no {v2} nor {v1} in {self.parent}/{below}")

    def read(self, v2: str, v1: str) -> str:
        return self.file(v2, v1).read_text().strip()

    def pids(self) -> int:
        return int(self.read("pids.current", "pids.current"))

    def events(self, v2: str, v1: str, event: str) -> int:
        total = 0
        for directory in self.dirs():
            for name in (v2, v1):
                for found in directory.rglob(name):
                    for line in found.read_text().splitlines():
                        if line.startswith(event + " "):
                            total += int(line.split()[1])
        return total

    def cpu_seconds(self) -> float:
        """CPU time the parent's processes used, all of them, in seconds."""
        for directory in self.dirs():
            if (directory / "cpu.stat").exists() and (directory / "cpu.max").exists():
                usage = (directory / "cpu.stat").read_text().split()[1]
                return int(usage) / 1e6
            if (directory / "cpuacct.usage").exists():
                return int((directory / "cpuacct.usage").read_text()) / 1e9
        raise AssertionError("no CPU accounting for the parent")

    def apply(self, data: dict[str, Any], budget: Budget | None = None) -> tuple[str, ApplyResult]:
        deployment = new_deployment()
        plan = compile_dict(data, deployment)
        result = self.executor.apply(plan, "local", budget)
        return naming.deployment_token(deployment), result

    def leftovers(self, token: str) -> list[str]:
        found = [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(token + "-")]
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        found += [f"link {line}" for line in links.splitlines() if f" {token}-" in line]
        found += [f"cgroup {d}" for d in self.cgroups().dirs(token) if d.exists()]
        return found


@pytest.fixture
def make_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Host]]:
    """Hosts held to CEILING, each under a parent cgroup of its own: checked there before
    any lab runs, and removed (with anything left in it) after the test."""
    made: list[Host] = []

    def make(suffix: str) -> Host:
        parent = f"labmgrt{os.getpid()}{suffix}"

        def cgroups() -> Cgroups:
            return Cgroups(parent=parent, ceiling=CEILING)

        executor = kernel_executor(tmp_path_factory.mktemp("agent"), cgroups=cgroups)
        host = Host(executor, parent, cgroups)
        made.append(host)
        cgroups().ensure_parent()
        # Never start a bomb on a parent that is not bounded: these must read back first.
        assert host.read("pids.max", "pids.max") == "200"
        assert int(host.read("memory.max", "memory.limit_in_bytes")) == 256 * MIB
        assert host.read("cpu.max", "cpu.cfs_quota_us").split()[0] == "50000"
        return host

    yield make
    for host in made:
        for token in host.executor.found_tokens():
            host.executor.destroy(token)
        for directory in host.dirs():
            assert not (directory / "cgroup.procs").read_text().split(), directory
            if directory.exists():
                for below in sorted(directory.rglob("*"), reverse=True):
                    if below.is_dir():
                        below.rmdir()
                directory.rmdir()


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_fork_bomb_stops_at_the_ceiling_while_the_host_and_the_agent_carry_on(
    make_host: Callable[[str], Host],
) -> None:
    host = make_host("a")
    token, _ = host.apply(lab("bomb", ["sh", "-c", BOMB]))

    # The bomb fills what labs may have, and the kernel refuses it more.
    assert wait_for(lambda: host.events("pids.events", "pids.events", "max") > 0, 20)
    peak = 0
    for _ in range(20):
        peak = max(peak, host.pids())
        time.sleep(0.05)
    assert CEILING.pids - 20 <= peak <= CEILING.pids

    # Its CPU is held to half a CPU of this machine.
    used, began = host.cpu_seconds(), time.monotonic()
    time.sleep(2)
    share = (host.cpu_seconds() - used) / (time.monotonic() - began)
    assert share <= CEILING.cpus * 1.25, share

    # Outside labmgr's cgroups the host forks as usual.
    started = time.monotonic()
    for _ in range(50):
        subprocess.run(["true"], check=True)
    assert time.monotonic() - started < 10

    # The agent still builds and removes labs: on another simulated host of this kernel...
    other = make_host("b")
    started = time.monotonic()
    quiet, result = other.apply(lab("quiet", ["sleep", "4242"]))
    assert os.path.exists(f"/proc/{result.nodes[0].pid}")
    other.executor.destroy(quiet)
    assert time.monotonic() - started < 30
    assert other.leftovers(quiet) == []

    # ... and destroys the bomb's lab, all of it, at once.
    started = time.monotonic()
    removed = host.executor.destroy(token)
    assert time.monotonic() - started < 30
    assert any("processes in cgroup" in line for line in removed), removed
    assert host.leftovers(token) == []
    assert host.pids() == 0


def test_a_memory_hog_stops_at_the_ceiling_and_is_killed_there(
    make_host: Callable[[str], Host],
) -> None:
    host = make_host("m")
    token, _ = host.apply(lab("hog", [PYTHON, "-c", HOG]))

    kills = ("memory.events", "memory.oom_control", "oom_kill")
    assert wait_for(lambda: host.events(*kills) >= 1, 30)
    peak = int(host.read("memory.peak", "memory.max_usage_in_bytes"))
    assert peak <= CEILING.memory

    host.executor.destroy(token)
    assert host.leftovers(token) == []


def test_a_bomb_in_a_reservations_share_leaves_the_rest_of_the_ceiling_to_other_labs(
    make_host: Callable[[str], Host],
) -> None:
    host = make_host("s")
    share = budget_for(new_deployment(), cpus=0.25, memory=128 * MIB, pids=100)
    bomb, _ = host.apply(lab("bomb", ["sh", "-c", BOMB]), share)
    assert wait_for(lambda: host.events("pids.events", "pids.events", "max") > 0, 20)
    assert host.pids() <= 100

    # The same agent, in the same parent: another lab starts, runs and goes.
    started = time.monotonic()
    quiet, result = host.apply(lab("quiet", ["sleep", "4343"]))
    assert os.path.exists(f"/proc/{result.nodes[0].pid}")
    host.executor.destroy(quiet)
    assert time.monotonic() - started < 30

    removed = host.executor.destroy(bomb)
    assert f"cgroup {share['cgroup']}" in removed
    assert host.leftovers(bomb) == [] and host.leftovers(quiet) == []
    assert host.pids() == 0
