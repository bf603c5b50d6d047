"""The host's ceiling on the agent side: the agent's reserve read from its own settings
(never from a message), the machine less that reserve written on the `labmgr` parent on
v2 and v1 hosts before any lab's cgroup, a node's CPU limit above it held to it on v1 (as
v2 does), and the host-wide budget an apply carries outside reservations written on the
deployment's own cgroup."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from labplan.messages import budget_for
from tests.unit.workers import test_cgroups_v2 as v2
from tests.unit.workers.fake_kernel import ALL_FACTS, FakeKernel
from tests.unit.workers.test_budget import SHARE, plan_dict
from workers import config
from workers.decoding import decode_budget
from workers.errors import ApplyError
from workers.executor import Executor
from workers.kernel.ceiling import Ceiling, Machine, ceiling_of, machine
from workers.kernel.cgroups import CgroupLayout, Cgroups

make_fake = v2.make_fake
MIB = 1 << 20
GIB = 1 << 30
SMALL = Ceiling(cpus=1.5, memory=256 * MIB, pids=200)
HOST_WIDE = {"reservation": None, "cgroup": None, "cpus": 1.8, "memory": GIB, "pids": 3000}


# --- the agent's reserve and the ceiling -------------------------------------------------


def test_the_reserve_defaults_to_a_tenth_of_the_cpus_512m_and_1024_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for kind in ("CPUS", "MEMORY", "PIDS"):
        monkeypatch.delenv(f"LABMGR_AGENT_RESERVE_{kind}", raising=False)

    reserve = config.reserve()

    assert reserve == config.Reserve(
        config.Part(10, percent=True), config.Part(512 * MIB), config.Part(1024)
    )
    assert ceiling_of(Machine(2, 24 * GIB, 32768), reserve) == Ceiling(
        1.8, 24 * GIB - 512 * MIB, 31744
    )


def test_the_reserve_takes_numbers_sizes_and_percentages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABMGR_AGENT_RESERVE_CPUS", "0.5")
    monkeypatch.setenv("LABMGR_AGENT_RESERVE_MEMORY", "2G")
    monkeypatch.setenv("LABMGR_AGENT_RESERVE_PIDS", "25%")

    assert ceiling_of(Machine(4, 8 * GIB, 4000), config.reserve()) == Ceiling(3.5, 6 * GIB, 3000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LABMGR_AGENT_RESERVE_CPUS", "lots"),
        ("LABMGR_AGENT_RESERVE_CPUS", "100%"),
        ("LABMGR_AGENT_RESERVE_MEMORY", "12Q"),
        ("LABMGR_AGENT_RESERVE_PIDS", "-5"),
        ("LABMGR_AGENT_RESERVE_PIDS", "inf"),
    ],
)
def test_a_bad_reserve_stops_the_agent_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        config.reserve()


def test_a_reserve_that_leaves_labs_nothing_is_refused_naming_the_setting() -> None:
    reserve = config.Reserve(config.Part(0), config.Part(2 * GIB), config.Part(0))

    with pytest.raises(ValueError) as caught:
        ceiling_of(Machine(2, GIB, 1000), reserve)

    assert str(caught.value) == (
        "LABMGR_AGENT_RESERVE_MEMORY keeps 2G of this machine's 1G of memory: labs would get none"
    )


def test_the_machine_is_its_cpus_memory_and_the_fewer_of_pid_max_and_threads_max(
    tmp_path: Path,
) -> None:
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "meminfo").write_text("MemTotal:       24683636 kB\nMemFree: 1 kB\n")
    (tmp_path / "sys/kernel/pid_max").write_text("32768\n")
    (tmp_path / "sys/kernel/threads-max").write_text("20000\n")

    found = machine(tmp_path)

    assert (found.memory, found.pids) == (24683636 * 1024, 20000)
    assert found.cpus >= 1


# --- written on the parent ---------------------------------------------------------------


def test_on_v2_the_parent_holds_the_ceiling_before_a_labs_cgroup_is_made(make_fake: Any) -> None:
    fake = make_fake()
    cgroups = Cgroups(CgroupLayout(unified=fake.root, v1={}), ceiling=SMALL)

    cgroups.ensure("lm1/n0")

    parent = fake.root / "labmgr"
    assert (parent / "cpu.max").read_text() == "150000 100000\n"
    assert (parent / "memory.max").read_text() == f"{256 * MIB}\n"
    assert (parent / "pids.max").read_text() == "200\n"
    assert fake.events.index(("pids.max", "labmgr")) < fake.events.index(("mkdir", "labmgr/lm1"))


def v1_host(tmp_path: Path, controllers: tuple[str, ...] = ("cpu", "memory", "pids")) -> Cgroups:
    layout = CgroupLayout(None, {c: tmp_path / c for c in controllers})
    for mount in layout.v1.values():
        mount.mkdir()
        for name, value in (("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000")):
            (mount / name).write_text(value)
    return Cgroups(layout, ceiling=SMALL)


def test_on_v1_the_parent_holds_the_ceiling_in_each_hierarchy(tmp_path: Path) -> None:
    cgroups = v1_host(tmp_path)

    cgroups.ensure("lm1/n0")

    assert (tmp_path / "cpu/labmgr/cpu.cfs_quota_us").read_text() == "150000"
    assert (tmp_path / "memory/labmgr/memory.limit_in_bytes").read_text() == str(256 * MIB)
    assert (tmp_path / "pids/labmgr/pids.max").read_text() == "200"


def test_on_v1_a_cpu_limit_above_the_ceiling_is_held_to_it_as_v2_would(tmp_path: Path) -> None:
    cgroups = v1_host(tmp_path)
    cgroups.ensure("lm1/n0")
    cgroups.ensure("lm1/n1")

    cgroups.set_limit("lm1/n0", "cpu.max", "200000 100000")  # cpus: 2
    cgroups.set_limit("lm1/n1", "cpu.max", "50000 100000")  # cpus: 0.5

    assert (tmp_path / "cpu/labmgr/lm1/n0/cpu.cfs_quota_us").read_text() == "150000"
    assert (tmp_path / "cpu/labmgr/lm1/n1/cpu.cfs_quota_us").read_text() == "50000"


def test_on_v1_a_nodes_cpu_limit_is_held_to_its_reservations_share_too(tmp_path: Path) -> None:
    cgroups = v1_host(tmp_path)
    cgroups.ensure("r5/lm1")
    cgroups.set_limit("r5", "cpu.max", "100000 100000")
    cgroups.ensure("lm1/n0")

    cgroups.set_limit("lm1/n0", "cpu.max", "120000 100000")

    assert (tmp_path / "cpu/labmgr/r5/lm1/n0/cpu.cfs_quota_us").read_text() == "100000"


def test_a_ceiling_the_kernel_refuses_is_logged_and_the_rest_still_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cgroups = v1_host(tmp_path, controllers=("memory", "pids"))  # no cpu controller

    with caplog.at_level(logging.WARNING, "labmgr.agent"):
        cgroups.ensure("lm1/n0")

    assert "the labmgr parent's ceiling: the host has no cpu cgroup controller" in caplog.text
    assert (tmp_path / "pids/labmgr/pids.max").read_text() == "200"


def test_a_ceiling_put_back_by_hand_is_restored_by_the_next_job(tmp_path: Path) -> None:
    first = v1_host(tmp_path)
    first.ensure("lm1/n0")
    (tmp_path / "pids/labmgr/pids.max").write_text("max")

    Cgroups(first.layout, ceiling=SMALL).ensure("lm2/n0")  # the next job's

    assert (tmp_path / "pids/labmgr/pids.max").read_text() == "200"


# --- a host-wide budget ------------------------------------------------------------------


def test_a_host_wide_budget_has_no_reservation_and_no_cgroup_of_its_own() -> None:
    budget = decode_budget(HOST_WIDE)

    assert budget == budget_for(None, 1.8, GIB, 3000)
    assert budget is not None and budget["cgroup"] is None


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({**HOST_WIDE, "cgroup": ".."}, "cgroup: '..' is not None"),
        ({**HOST_WIDE, "cgroup": "labmgr"}, "cgroup: 'labmgr' is not None"),
        ({"cpus": 1.0}, "reservation: an integer id is needed, not 'absent'"),
    ],
)
def test_a_host_wide_budget_names_no_cgroup(budget: dict[str, Any], message: str) -> None:
    with pytest.raises(ApplyError, match="the budget is invalid") as caught:
        decode_budget(budget)

    assert message in str(caught.value)


@pytest.fixture
def executor(kernel: FakeKernel, tmp_path: Path) -> Executor:
    return Executor(tmp_path, kernel.driver, facts=ALL_FACTS)


def test_a_host_wide_budget_bounds_the_deployments_own_cgroup(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", HOST_WIDE)

    assert sorted(kernel.cgroups) == ["lm7", "lm7/n0", "lm7/n1"]
    assert kernel.cgroups["lm7"] == {
        "cpu.max": "180000 100000",
        "memory.max": str(GIB),
        "pids.max": "3000",
    }
    record = executor.journal.read("lm7")
    assert record is not None and record.cgroup == "lm7" and record.reservation_cgroup is None

    assert "cgroup lm7" in executor.destroy("lm7")
    assert kernel.objects() == []


def test_a_lab_deployed_without_a_budget_takes_the_host_wide_one_in_place(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local")  # an older control plane sent none
    pids = set(kernel.processes)

    executor.apply(plan_dict(7), "local", HOST_WIDE)

    assert kernel.cgroups["lm7"]["pids.max"] == "3000"
    assert set(kernel.processes) == pids  # the nodes kept running


def test_a_lab_in_a_reservation_is_not_moved_out_by_a_host_wide_budget(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)

    with pytest.raises(ApplyError, match="lm7 runs in reservation cgroup r5, not no reservation"):
        executor.apply(plan_dict(7), "local", HOST_WIDE)
