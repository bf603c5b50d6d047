"""A reservation's budget in the kernel: two nodes with no limits of their own, inside a
256M / 24-process reservation, cannot use more than that together; destroying the lab
leaves nothing, the reservation's cgroup included."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labplan import naming
from labplan.messages import Budget, budget_for
from workers.kernel.cgroups import PARENT, Cgroups
from workers.wiring import kernel_executor

from .conftest import PYTHON, Lab, compile_dict, leftovers, new_deployment

pytestmark = pytest.mark.vm

MEMORY = 256 << 20
PIDS = 24
HOG = 200 << 20  # one node alone fits; two together do not

PAIR = {
    "labfile": 1,
    "name": "budget",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.236.0.0/24"}},
    "nodes": {
        "alpha": {"networks": {"lan": {}}, "command": ["sleep", "4242"]},
        "beta": {"networks": {"lan": {}}, "command": ["sleep", "4343"]},
    },
}

# Writes every byte, so every page is charged to the node's cgroup, then holds it.
ALLOCATE = f"""
import sys, time
block = b"x" * {HOG}
print("held", flush=True)
time.sleep(4)
print("released", len(block))
"""

# Forks children that wait, until the kernel refuses a fork; then ends them.
FORK = """
import os, signal
children = []
try:
    for _ in range(100):
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        children.append(pid)
except OSError as exc:
    print("refused after", len(children), exc.strerror, flush=True)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


def reservation_dirs(budget: Budget) -> list[Path]:
    """The reservation's cgroup in every hierarchy, whether it exists or not."""
    return [h / PARENT / budget["cgroup"] for h in Cgroups().layout.hierarchies()]


def counter(budget: Budget, v2: str, v1: str) -> str:
    """A file of the reservation's cgroup, v2 name or v1 name, whichever the host has."""
    for directory in reservation_dirs(budget):
        for name in (v2, v1):
            if (directory / name).exists():
                return (directory / name).read_text()
    raise AssertionError(f"no {v2} nor {v1} in {budget['cgroup']}")


@pytest.fixture
def booked(data_dir: Path) -> Iterator[tuple[Lab, Budget]]:
    deployment = new_deployment()
    # A reservation id of this run alone, like the deployment's.
    budget = budget_for(deployment, cpus=1.0, memory=MEMORY, pids=PIDS)
    executor = kernel_executor(data_dir)
    token = naming.deployment_token(deployment)
    try:
        result = executor.apply(compile_dict(PAIR, deployment), "local", budget)
        yield Lab(executor, token, result), budget
    finally:
        removed = executor.destroy(token)
        assert f"cgroup {budget['cgroup']}" in removed
        assert leftovers(token) == []
        assert [d for d in reservation_dirs(budget) if d.exists()] == []


def test_the_nodes_cgroups_sit_in_the_reservations_which_holds_the_share(
    booked: tuple[Lab, Budget],
) -> None:
    lab, budget = booked
    record = lab.executor.journal.read(lab.token)
    assert record is not None and record.cgroup == f"{budget['cgroup']}/{lab.token}"

    for directory in reservation_dirs(budget):
        assert (directory / lab.token / "n0").is_dir() and (directory / lab.token / "n1").is_dir()
    assert int(counter(budget, "memory.max", "memory.limit_in_bytes")) == MEMORY
    assert counter(budget, "pids.max", "pids.max").strip() == str(PIDS)
    assert counter(budget, "cpu.max", "cpu.cfs_quota_us").split()[0] == "100000"
    # The nodes have no limits of their own.
    node = Cgroups().dirs(f"{lab.token}/n0")
    assert any(d.parent.parent.name == budget["cgroup"] for d in node)
    proc_cgroup = Path(f"/proc/{lab.pid('alpha')}/cgroup").read_text()
    assert f"/{PARENT}/{budget['cgroup']}/{lab.token}/n0" in proc_cgroup


def test_two_nodes_without_limits_cannot_use_more_than_the_reservations_memory(
    booked: tuple[Lab, Budget],
) -> None:
    lab, budget = booked
    alone = lab.run("alpha", PYTHON, "-c", ALLOCATE)
    assert alone.returncode == 0 and "released" in alone.stdout  # 200M fits alone

    outcomes: dict[str, Any] = {}

    def allocate(node: str) -> None:
        outcomes[node] = lab.run(node, PYTHON, "-c", ALLOCATE)

    threads = [threading.Thread(target=allocate, args=(n,)) for n in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    finished = [n for n, done in outcomes.items() if "released" in done.stdout]
    killed = [n for n, done in outcomes.items() if done.returncode != 0]
    assert len(finished) <= 1 and killed, {n: (d.returncode, d.stdout) for n, d in outcomes.items()}
    peak = int(counter(budget, "memory.peak", "memory.max_usage_in_bytes"))
    assert 2 * HOG > MEMORY >= peak > HOG
    kills = event_count(budget, "memory.events", "oom_kill")
    assert kills + event_count(budget, "memory.oom_control", "oom_kill") >= 1


def event_count(budget: Budget, file: str, event: str) -> int:
    """An event counted in the reservation's cgroup and below: v2 counts most up the
    tree, v1 only in the cgroup where it happened (the node's)."""
    total = 0
    for directory in reservation_dirs(budget):
        for events in directory.rglob(file):
            for line in events.read_text().splitlines():
                if line.startswith(event + " "):
                    total += int(line.split()[1])
    return total


def test_nodes_without_limits_cannot_fork_past_the_reservations_pids(
    booked: tuple[Lab, Budget],
) -> None:
    lab, budget = booked

    done = lab.run("beta", PYTHON, "-c", FORK)

    assert "refused after" in done.stdout and "Resource temporarily unavailable" in done.stdout
    forked = int(done.stdout.split()[2])
    assert forked < PIDS
    assert event_count(budget, "pids.events", "max") >= 1
    assert os.path.exists(f"/proc/{lab.pid('beta')}")  # the node itself goes on
