"""A node's limits on a pure cgroup v2 hierarchy (the VM tier's kernel, booted with
cgroup_no_v1=all): memory.max kills what grows past it, pids.max stops a fork storm,
cpu.max throttles, io.max lands on a real disk; each seen in the node's own v2 files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from workers.kernel.cgroups import Cgroups

from .conftest import PYTHON, Lab

pytestmark = pytest.mark.vm


@pytest.fixture(autouse=True)
def pure_v2() -> None:
    if Cgroups().layout.mode != "v2":
        pytest.skip("host has no pure cgroup v2 hierarchy")


def limited(limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "cgv2",
        "networks": {"isolated": {"driver": "none"}},
        "nodes": {"box": {"networks": {"isolated": {}}, "limits": limits}},
    }


def keyed(lab: Lab, name: str) -> dict[str, int]:
    """A flat-keyed file of the node's cgroup (memory.events, cpu.stat, ...)."""
    text = Cgroups().read(lab.cgroup("box"), name)
    assert text is not None, f"the node's cgroup has no {name}"
    return {key: int(value) for key, value in (line.split() for line in text.splitlines())}


def test_memory_max_kills_the_process_that_grows_past_it(build: Any) -> None:
    lab: Lab = build(limited({"memory": "64M"}))
    assert int(Cgroups().read(lab.cgroup("box"), "memory.max") or 0) == 64 << 20

    small = lab.run("box", PYTHON, "-c", "b = bytearray(16 << 20); print('fits')")
    big = lab.run("box", PYTHON, "-c", "b = b'x' * (256 << 20); print('grew')")

    assert small.returncode == 0 and small.stdout == "fits\n"
    assert big.returncode == 137 and "grew" not in big.stdout  # SIGKILL, by the OOM killer
    assert keyed(lab, "memory.events")["oom_kill"] >= 1
    assert Path(f"/proc/{lab.pid('box')}").exists()  # the node's init is not the one killed


FORK_STORM = """
import os, time
made = refused = 0
for _ in range(60):
    try:
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        made += 1
    except OSError:
        refused += 1
print(made, refused)
"""


def test_pids_max_stops_a_fork_storm(build: Any) -> None:
    lab: Lab = build(limited({"pids": 16}))
    assert (Cgroups().read(lab.cgroup("box"), "pids.max") or "").strip() == "16"

    made, refused = (int(n) for n in lab.run("box", PYTHON, "-c", FORK_STORM).stdout.split())

    assert made < 16 and refused == 60 - made
    assert keyed(lab, "pids.events")["max"] >= 1


def test_cpu_max_throttles_a_busy_loop(build: Any) -> None:
    lab: Lab = build(limited({"cpus": 0.2}))
    assert (Cgroups().read(lab.cgroup("box"), "cpu.max") or "").split() == ["20000", "100000"]
    before = keyed(lab, "cpu.stat")

    started = time.monotonic()
    lab.run("box", "timeout", "2", "sh", "-c", "while :; do :; done")
    wall = time.monotonic() - started

    after = keyed(lab, "cpu.stat")
    used = (after["usage_usec"] - before["usage_usec"]) / 1e6
    assert after["nr_throttled"] > before["nr_throttled"]
    assert after["throttled_usec"] > before["throttled_usec"]
    # a fifth of a CPU over the loop, with a period's slack either side
    assert used <= 0.2 * wall + 0.25, (used, wall)


def disk() -> str | None:
    """MAJOR:MINOR of a whole virtio or SCSI disk of this machine, None if it has none."""
    for block in sorted(Path("/sys/block").glob("[vs]d[a-z]")):
        return (block / "dev").read_text().strip()
    return None


def test_io_max_is_written_and_reads_back_for_a_real_disk(build: Any) -> None:
    device = disk()
    if device is None:
        pytest.skip("the machine has no virtio or SCSI disk")
    throttle = {"device": device, "rbps": "10M", "wbps": "5M", "riops": 400, "wiops": 300}
    lab: Lab = build(limited({"io": [throttle]}))

    io_max = Cgroups().read(lab.cgroup("box"), "io.max") or ""

    assert f"{device} rbps=10485760 wbps=5242880 riops=400 wiops=300" in io_max
