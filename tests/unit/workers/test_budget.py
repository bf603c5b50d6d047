"""A reservation's budget on the agent side: the message checked at the privilege boundary,
the deployment's cgroup put inside the reservation's (`r<id>`) with the share written on
it, the journal saying where, and destroy, rollback and sweep leaving no `r<id>` without
a lab and never removing one that still holds a lab."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from labplan import codec, labfile
from labplan.compiler import compile_plan
from labplan.messages import ControlTask, budget_for
from tests.unit.workers import test_cgroups_v2 as v2
from tests.unit.workers.fake_kernel import ALL_FACTS, FakeKernel
from workers.agent import Agent
from workers.decoding import decode_budget
from workers.errors import ApplyError, MoveRefusedError
from workers.executor import Executor
from workers.kernel.cgroups import CgroupLayout, Cgroups, budget_limits, is_reservation_cgroup
from workers.metrics import Sampler

PAIR = {
    "labfile": 1,
    "name": "pair",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.10.0.0/24"}},
    "nodes": {
        "alpha": {"networks": {"lan": {}}},
        "beta": {"networks": {"lan": {}}, "limits": {"memory": "64M"}},
    },
}

make_fake = v2.make_fake  # the cgroup2 stand-in's fixture, used here too

SHARE = {"reservation": 5, "cpus": 1.5, "memory": 256 << 20, "pids": 100}


def plan_dict(deployment: int, name: str = "pair") -> dict[str, Any]:
    # Labs running side by side on one host route subnets of their own.
    lan = {"driver": "bridge", "subnet": f"10.{deployment % 250}.0.0/24"}
    lab = labfile.validate({**PAIR, "name": name, "networks": {"lan": lan}})
    return codec.plan_to_dict(compile_plan(lab, deployment=deployment))


@pytest.fixture
def executor(kernel: FakeKernel, tmp_path: Path) -> Executor:
    return Executor(tmp_path, kernel.driver, facts=ALL_FACTS)


# --- the message -------------------------------------------------------------------------


def test_a_budget_is_read_into_the_share_the_kernel_gets() -> None:
    budget = decode_budget({**SHARE, "cgroup": "r5"})

    assert budget == budget_for(5, 1.5, 256 << 20, 100)
    assert budget is not None and budget["cgroup"] == "r5"
    assert budget_limits(budget) == [
        ("cpu.max", "150000 100000"),
        ("memory.max", "268435456"),
        ("pids.max", "100"),
    ]
    assert budget_for(36)["cgroup"] == "r10"
    assert budget_limits(budget_for(36)) == [
        ("cpu.max", "max 100000"),
        ("memory.max", "max"),
        ("pids.max", "max"),
    ]


def test_no_budget_means_no_reservation() -> None:
    assert decode_budget(None) is None


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({**SHARE, "reservation": True}, "reservation: an integer id is needed, not True"),
        ({**SHARE, "reservation": "5"}, "reservation: an integer id is needed, not '5'"),
        ({**SHARE, "reservation": 0}, "reservation: an integer id is needed, not 0"),
        ({**SHARE, "reservation": 2**60}, "reservation: an integer id is needed"),
        ({**SHARE, "cpus": math.nan}, "cpus: null or a number from 0.01 to 65536"),
        ({**SHARE, "cpus": 0.001}, "cpus: null or a number from 0.01 to 65536"),
        ({**SHARE, "cpus": "1"}, "cpus: null or a number from 0.01 to 65536"),
        ({**SHARE, "memory": 1.5e9}, "memory: null or an integer from 1048576"),
        ({**SHARE, "memory": 4096}, "memory: null or an integer from 1048576"),
        ({**SHARE, "pids": 0}, "pids: null or an integer from 1 to 4194304"),
        ({**SHARE, "pids": False}, "pids: null or an integer from 1 to 4194304"),
        ({**SHARE, "cgroup": "../../system.slice"}, "cgroup: '../../system.slice' is not 'r5'"),
        ({**SHARE, "path": "/"}, "unknown fields path"),
        ([5], "not an object"),
    ],
)
def test_a_budget_out_of_range_is_refused_with_the_field(budget: object, message: str) -> None:
    with pytest.raises(ApplyError, match="the budget is invalid") as caught:
        decode_budget(budget)

    assert message in str(caught.value)


def test_only_r_and_base36_names_a_reservation_cgroup() -> None:
    assert [is_reservation_cgroup(n) for n in ("r5", "r1z", "r", "lm5", "rA", "r5-x")] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


# --- placing a deployment -----------------------------------------------------------------


def test_a_lab_in_a_reservation_has_its_cgroups_inside_the_reservations(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)

    assert sorted(kernel.cgroups) == ["r5", "r5/lm7", "r5/lm7/n0", "r5/lm7/n1"]
    assert kernel.cgroups["r5"] == {
        "cpu.max": "150000 100000",
        "memory.max": "268435456",
        "pids.max": "100",
    }
    assert kernel.cgroups["r5/lm7/n1"] == {"memory.max": "67108864"}
    assert sorted(cgroup for cgroup, _ in kernel.processes.values()) == [
        "r5/lm7/n0",
        "r5/lm7/n1",
    ]
    record = executor.journal.read("lm7")
    assert record is not None
    assert record.cgroup == "r5/lm7" and record.reservation_cgroup == "r5"
    assert record.budget == {"reservation": 5, "cpus": 1.5, "memory": 256 << 20, "pids": 100}
    assert record.node_cgroup("lm7/n0") == "r5/lm7/n0"


def test_a_lab_without_a_budget_stays_under_the_parent(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local")

    assert sorted(kernel.cgroups) == ["lm7", "lm7/n0", "lm7/n1"]
    record = executor.journal.read("lm7")
    assert record is not None
    assert record.cgroup == "lm7" and record.reservation_cgroup is None
    assert record.node_cgroup("lm7/n0") == "lm7/n0"


def test_labs_of_one_reservation_share_its_cgroup_until_the_last_goes(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)
    executor.apply(plan_dict(8, "other"), "local", SHARE)

    first = executor.destroy("lm7")

    assert "cgroup r5/lm7" in first and "cgroup r5" not in first
    assert sorted(kernel.cgroups) == ["r5", "r5/lm8", "r5/lm8/n0", "r5/lm8/n1"]
    assert len(kernel.processes) == 2

    last = executor.destroy("lm8")

    assert "cgroup r5/lm8" in last and "cgroup r5" in last
    assert kernel.objects() == []


def test_a_re_apply_writes_the_reservations_new_share(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)
    pids = set(kernel.processes)

    executor.apply(plan_dict(7), "local", {**SHARE, "memory": 512 << 20, "pids": None})

    assert kernel.cgroups["r5"]["memory.max"] == str(512 << 20)
    assert kernel.cgroups["r5"]["pids.max"] == "max"
    assert set(kernel.processes) == pids  # the nodes kept running


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (
            {**SHARE, "reservation": 6},
            "lm7 runs in reservation cgroup r5, not reservation cgroup r6",
        ),
        (None, "lm7 runs in reservation cgroup r5, not no reservation"),
    ],
)
def test_a_running_lab_is_not_moved_to_another_reservation(
    kernel: FakeKernel, executor: Executor, budget: dict[str, Any] | None, message: str
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)
    before = kernel.objects()

    with pytest.raises(MoveRefusedError, match=message):
        executor.apply(plan_dict(7), "local", budget)

    assert kernel.objects() == before


def test_a_lab_outside_reservations_is_not_moved_into_one(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local")

    with pytest.raises(MoveRefusedError, match="lm7 runs in no reservation, not reservation"):
        executor.apply(plan_dict(7), "local", SHARE)

    assert "r5" not in kernel.cgroups


@pytest.mark.parametrize("fail_at", [1, 2, 4, 5, 6, 12, 20])
def test_a_failed_apply_leaves_no_reservation_cgroup_behind(
    kernel: FakeKernel, executor: Executor, fail_at: int
) -> None:
    kernel.fail_at = fail_at

    with pytest.raises(ApplyError, match="rolled back"):
        executor.apply(plan_dict(7), "local", SHARE)

    assert kernel.objects() == []
    assert executor.journal.tokens() == []


def test_a_failed_apply_keeps_the_reservation_of_another_running_lab(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)
    other = kernel.objects()
    kernel.fail_at = kernel.calls + 8

    with pytest.raises(ApplyError, match="rolled back"):
        executor.apply(plan_dict(8, "other"), "local", SHARE)

    assert kernel.objects() == other


def test_destroy_without_a_journal_finds_the_lab_inside_its_reservation(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)
    executor.journal.remove("lm7")

    removed = executor.destroy("lm7")

    assert "2 processes in cgroup r5/lm7" in removed and "cgroup r5" in removed
    assert kernel.objects() == []


# --- sweep --------------------------------------------------------------------------------


def test_sweep_keeps_a_reservation_holding_a_live_lab_and_removes_empty_ones(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)
    executor.apply(plan_dict(8, "other"), "local", {**SHARE, "reservation": 6})
    kernel.cgroups["r9"] = {"memory.max": "1"}  # left by a crash before its lab's cgroup

    removed = executor.sweep(["lm7"])

    assert "cgroup r6/lm8" in removed and "cgroup r6" in removed and "cgroup r9" in removed
    assert "cgroup r5" not in removed
    assert sorted(kernel.cgroups) == ["r5", "r5/lm7", "r5/lm7/n0", "r5/lm7/n1"]


def test_sweep_finds_an_orphan_lab_by_its_cgroup_inside_a_reservation(
    kernel: FakeKernel, executor: Executor
) -> None:
    kernel.cgroups.update({"r5": {}, "r5/lm7": {}, "r5/lm7/n0": {}})

    assert executor.found_tokens() == {"lm7"}
    removed = executor.sweep([])

    assert removed == ["cgroup r5/lm7", "cgroup r5"]
    assert kernel.objects() == []


# --- the agent's jobs ---------------------------------------------------------------------


def agent_for(executor: Executor, sent: list[tuple[str, dict[str, Any]]]) -> Agent:
    return Agent(executor, lambda task, kwargs: sent.append((task, kwargs)), "local", lambda n: [])


def result_of(sent: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return [kw for task, kw in sent if task == ControlTask.DEPLOYMENT_RESULT][-1]


def test_the_apply_job_puts_the_lab_in_the_budget_it_is_sent(
    kernel: FakeKernel, executor: Executor
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    agent = agent_for(executor, sent)

    agent.run("t1", "apply", {"deployment": 7, "plan": plan_dict(7), "budget": SHARE})

    assert result_of(sent)["ok"] is True
    assert "r5/lm7/n0" in kernel.cgroups
    found = executor.journal.node("lm7", "alpha")
    assert found is not None and found.spawn.cgroup == "lm7/n0"  # resolved by Cgroups


def test_the_apply_job_refuses_a_bad_budget_before_touching_anything(
    kernel: FakeKernel, executor: Executor
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    agent = agent_for(executor, sent)

    agent.run("t1", "apply", {"deployment": 7, "plan": plan_dict(7), "budget": {"reservation": -1}})

    result = result_of(sent)
    assert result["ok"] is False
    assert "reservation: an integer id is needed, not -1" in result["error"]
    assert kernel.objects() == [] and kernel.calls == 0


def test_a_redeploy_into_another_reservation_is_refused_and_prunes_nothing(
    kernel: FakeKernel, executor: Executor
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    agent = agent_for(executor, sent)
    agent.run("t1", "apply", {"deployment": 7, "plan": plan_dict(7), "budget": SHARE})
    before = kernel.objects()
    smaller = {**PAIR, "nodes": {"alpha": PAIR["nodes"]["alpha"]}}  # type: ignore[index]
    plan = codec.plan_to_dict(compile_plan(labfile.validate(smaller), deployment=7))

    agent.run(
        "t2",
        "apply",
        {
            "deployment": 7,
            "plan": plan,
            "previous": plan_dict(7),
            "budget": {**SHARE, "reservation": 6},
        },
    )

    result = result_of(sent)
    assert result["ok"] is False
    assert "destroy and deploy it again to move it" in result["error"]
    assert not any(kw.get("name") == "rollback" for _, kw in sent)
    assert kernel.objects() == before


def test_on_start_a_lab_left_mid_apply_goes_back_into_its_reservation(
    kernel: FakeKernel, executor: Executor, tmp_path: Path
) -> None:
    executor.journal.append(
        "lm7",
        {
            "token": "lm7",
            "lab": "pair",
            "host": "local",
            "group": 0x10007,
            "budget": SHARE,
            "cgroup": "r5/lm7",
            "plan": plan_dict(7),
        },
    )
    executor.journal.close("lm7")
    sent: list[tuple[str, dict[str, Any]]] = []

    agent_for(executor, sent).recover()

    assert result_of(sent)["ok"] is True
    assert sorted(kernel.cgroups) == ["r5", "r5/lm7", "r5/lm7/n0", "r5/lm7/n1"]


# --- finding node cgroups on a host -------------------------------------------------------


def v1_host(tmp_path: Path) -> Cgroups:
    """Cgroups over plain directories standing for two v1 hierarchies."""
    layout = CgroupLayout(None, {"memory": tmp_path / "memory", "pids": tmp_path / "pids"})
    for mount in layout.v1.values():
        mount.mkdir()
    return Cgroups(layout)


def test_a_plans_node_cgroup_is_found_inside_its_reservations(tmp_path: Path) -> None:
    cgroups = v1_host(tmp_path)
    cgroups.ensure("r5/lm7")
    cgroups.set_limit("r5", "memory.max", str(256 << 20))
    cgroups.ensure("lm7/n0")

    elsewhere = Cgroups(cgroups.layout)  # as exec, a terminal or the CLI make their own

    assert elsewhere.resolve("lm7/n0") == "r5/lm7/n0"
    assert elsewhere.procs_files("lm7/n0") == [
        tmp_path / "memory/labmgr/r5/lm7/n0/cgroup.procs",
        tmp_path / "pids/labmgr/r5/lm7/n0/cgroup.procs",
    ]
    assert (tmp_path / "memory/labmgr/r5/memory.limit_in_bytes").read_text() == "268435456"
    assert elsewhere.resolve("lm8/n0") == "lm8/n0"  # not deployed: where it would go
    assert elsewhere.children() == ["r5", "r5/lm7"]


def test_a_reservation_cgroup_is_removed_only_once_empty(tmp_path: Path) -> None:
    cgroups = v1_host(tmp_path)
    cgroups.ensure("r5/lm7/n0")

    assert cgroups.remove("r5") is False
    assert (tmp_path / "memory/labmgr/r5/lm7/n0").is_dir()

    cgroups.remove("lm7")

    assert cgroups.remove("r5") is True
    assert cgroups.children() == []


def test_metrics_sample_the_nodes_of_a_lab_inside_a_reservation_where_they_are(
    executor: Executor, tmp_path: Path
) -> None:
    executor.apply(plan_dict(7), "local", SHARE)
    sampler = Sampler(tmp_path / "journal", layout=CgroupLayout(tmp_path / "cg", {}))

    files = {n.node: n.memory_current for n in sampler.nodes()}

    assert files == {
        "alpha": tmp_path / "cg/labmgr/r5/lm7/n0/memory.current",
        "beta": tmp_path / "cg/labmgr/r5/lm7/n1/memory.current",
    }


def test_a_redeploy_inside_the_reservation_removes_a_dropped_nodes_cgroup(
    kernel: FakeKernel, executor: Executor
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    agent = agent_for(executor, sent)
    agent.run("t1", "apply", {"deployment": 7, "plan": plan_dict(7), "budget": SHARE})
    smaller = {**PAIR, "nodes": {"alpha": PAIR["nodes"]["alpha"]}}  # type: ignore[index]
    plan = codec.plan_to_dict(compile_plan(labfile.validate(smaller), deployment=7))

    agent.run(
        "t2", "apply", {"deployment": 7, "plan": plan, "previous": plan_dict(7), "budget": SHARE}
    )

    assert result_of(sent)["ok"] is True
    assert sorted(kernel.cgroups) == ["r5", "r5/lm7", "r5/lm7/n0"]
    assert [cgroup for cgroup, _ in kernel.processes.values()] == ["r5/lm7/n0"]


def test_on_v2_the_reservation_and_the_deployment_delegate_controllers_to_the_nodes(
    make_fake: Any,
) -> None:
    fake = make_fake()
    cgroups = v2.v2_cgroups(fake)
    budget = budget_for(5, 0.5, 256 << 20, 100)

    cgroups.ensure(budget["cgroup"])
    for key, value in budget_limits(budget):
        cgroups.set_limit(budget["cgroup"], key, value)
    cgroups.ensure("r5/lm7")
    cgroups.ensure("lm7/n0")

    enabled = "enable cpu io memory pids"
    made = [e for e in fake.events if "labmgr/" in e[1] and e[0] in ("mkdir", enabled)]
    assert made == [
        ("mkdir", "labmgr/r5"),
        (enabled, "labmgr/r5"),
        ("mkdir", "labmgr/r5/lm7"),
        (enabled, "labmgr/r5/lm7"),
        ("mkdir", "labmgr/r5/lm7/n0"),
    ]
    reservation = fake.root / "labmgr/r5"
    assert (reservation / "cpu.max").read_text() == "50000 100000\n"
    assert (reservation / "memory.max").read_text() == "268435456\n"
    assert (reservation / "pids.max").read_text() == "100\n"
    assert (reservation / "lm7/n0/cgroup.subtree_control").read_text() == ""
    elsewhere = v2.v2_cgroups(fake)
    assert elsewhere.procs_files("lm7/n0") == [reservation / "lm7/n0/cgroup.procs"]
