"""The executor against the in-memory kernel: apply, converge, roll back, destroy, sweep."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.workers.fake_kernel import (
    ALL_FACTS,
    Crash,
    CrashingDriver,
    FakeDriver,
    FakeKernel,
    FakeKernelError,
)
from tests.unit.workers.labs import campus_on, plan_dict
from workers.errors import ApplyError, RefusedError
from workers.executor import Executor, Step
from workers.facts import Facts


def executor_for(kernel: FakeKernel, tmp_path: Path, **kwargs: Any) -> Executor:
    return Executor(tmp_path, kernel.driver, facts=kwargs.pop("facts", ALL_FACTS), **kwargs)


def test_it_builds_every_object_of_the_plan(kernel: FakeKernel, tmp_path: Path) -> None:
    result = executor_for(kernel, tmp_path).apply(plan_dict(), "local")

    assert [n.name for n in result.nodes] == ["db", "probe", "web"]
    assert kernel.netns == {"lm7-n0", "lm7-n1", "lm7-n2"}
    assert kernel.links[(None, "lm7-b0")].group == 0x10007
    assert kernel.links[(None, "lm7-b0")].alias == "labmgr:lm7"
    assert kernel.links[("lm7-n2", "eth1")].kind == "macvlan bridge"
    assert kernel.cgroups["lm7/n2"] == {"memory.max": str(64 << 20), "pids.max": "50"}
    assert kernel.tables["lm7"] == [
        "guard lm7-b0 10.20.0.1",
        "isolate lm7-b0 10.20.0.0/24",
        "guard lm7-b1 10.10.0.1",
        "nat lm7-b1 10.10.0.0/24",
    ]
    web = next(n for n in result.nodes if n.name == "web")
    assert [(i.name, i.addresses) for i in web.interfaces] == [
        ("eth0", ("10.10.0.3/24",)),
        ("eth1", ("10.30.0.1/24",)),
        ("lo", ()),
    ]


def test_it_reports_every_step_in_order(kernel: FakeKernel, tmp_path: Path) -> None:
    steps: list[Step] = []
    data = plan_dict()
    executor_for(kernel, tmp_path, progress=steps.append).apply(data, "local")

    assert [s.index for s in steps] == list(range(len(data["hosts"][0]["ops"])))
    assert steps[0].kind == "create_netns" and steps[0].target == "lm7-n0"
    assert steps[-1].kind == "spawn_node" and steps[-1].state == "done"


class SlowStartDriver(FakeDriver):
    def spawn_all(self, starts: Any, token: str) -> Any:
        time.sleep(0.05)  # the three nodes start together in this time
        return super().spawn_all(starts, token)


def test_nodes_started_together_count_their_time_once(kernel: FakeKernel, tmp_path: Path) -> None:
    steps: list[Step] = []
    executor = Executor(
        tmp_path, lambda: SlowStartDriver(kernel), facts=ALL_FACTS, progress=steps.append
    )
    began = time.monotonic()
    executor.apply(plan_dict(), "local")
    wall = time.monotonic() - began

    assert sum(s.seconds for s in steps if s.kind == "spawn_node") >= 0.05
    assert sum(s.seconds for s in steps) <= wall


def test_reapplying_converges_and_keeps_running_nodes(kernel: FakeKernel, tmp_path: Path) -> None:
    executor = executor_for(kernel, tmp_path)
    first = executor.apply(plan_dict(), "local")
    before = kernel.objects()

    second = executor.apply(plan_dict(), "local")

    assert kernel.objects() == before
    assert [n.pid for n in second.nodes] == [n.pid for n in first.nodes]


def test_a_failing_step_rolls_back_everything(kernel: FakeKernel, tmp_path: Path) -> None:
    kernel.fail_at = 20
    steps: list[Step] = []

    with pytest.raises(
        ApplyError, match="injected failure at call 20; the deployment was rolled back"
    ):
        executor_for(kernel, tmp_path, progress=steps.append).apply(plan_dict(), "local")

    assert kernel.objects() == []
    assert any(s.state == "failed" for s in steps)
    assert not (tmp_path / "journal" / "lm7.json").exists()


@pytest.mark.parametrize("crash_at", [1, 5, 17, 30, 44])
def test_after_a_crash_reapplying_converges_and_destroy_leaves_nothing(
    kernel: FakeKernel, tmp_path: Path, crash_at: int
) -> None:
    crashing = Executor(tmp_path, lambda: CrashingDriver(kernel, crash_at), facts=ALL_FACTS)
    with pytest.raises(Crash):
        crashing.apply(plan_dict(), "local")
    kernel.calls = 0

    executor = executor_for(kernel, tmp_path)
    result = executor.apply(plan_dict(), "local")
    assert len(result.nodes) == 3
    assert len(kernel.processes) == 3  # a node half-started before the crash is not doubled

    executor.destroy("lm7")
    assert kernel.objects() == []


def test_it_refuses_a_plan_needing_a_missing_feature_before_creating_anything(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    facts = Facts(**{**ALL_FACTS.to_dict(), "link_kinds": ("veth", "bridge")})

    with pytest.raises(RefusedError, match="this host lacks: macvlan"):
        executor_for(kernel, tmp_path, facts=facts).apply(plan_dict(), "local")

    assert kernel.objects() == []


def test_it_refuses_a_plan_naming_another_deployments_objects(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    data = plan_dict()
    data["hosts"][0]["ops"][0]["netns"] = "lm8-n0"

    with pytest.raises(ApplyError, match="the plan is invalid"):
        executor_for(kernel, tmp_path).apply(data, "local")

    assert kernel.objects() == []


def test_destroy_succeeds_on_a_lab_that_is_already_gone(kernel: FakeKernel, tmp_path: Path) -> None:
    executor = executor_for(kernel, tmp_path)
    executor.apply(plan_dict(), "local")
    kernel.driver().remove_netns("lm7-n1")  # half gone already

    removed = executor.destroy("lm7")

    assert "cgroup lm7" in removed and "journal lm7" in removed
    assert kernel.objects() == []
    assert executor.destroy("lm7") == []


def test_destroying_one_lab_leaves_the_other_running(kernel: FakeKernel, tmp_path: Path) -> None:
    executor = executor_for(kernel, tmp_path)
    executor.apply(plan_dict(deployment=7), "local")
    executor.apply(plan_dict(campus_on(1), deployment=8), "local")

    executor.destroy("lm7")

    assert kernel.netns == {"lm8-n0", "lm8-n1", "lm8-n2"}
    assert len(kernel.processes) == 3


def test_sweep_removes_only_what_no_live_deployment_owns(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    executor = executor_for(kernel, tmp_path)
    executor.apply(plan_dict(deployment=7), "local")
    executor.apply(plan_dict(campus_on(1), deployment=8), "local")

    removed = executor.sweep(live=["lm8"])

    assert "netns lm7-n0" in removed
    assert executor.found_tokens() == {"lm8"}


def test_each_node_gets_its_own_uid_range(kernel: FakeKernel, tmp_path: Path) -> None:
    executor = executor_for(kernel, tmp_path)
    executor.apply(plan_dict(deployment=7), "local")
    executor.apply(plan_dict(campus_on(1), deployment=8), "local")

    bases = [base for _, base in kernel.processes.values()]
    assert len(set(bases)) == 6
    # From systemd's container range up, clear of the host users' /etc/subuid ranges.
    assert all(b is not None and b >= 0x80000 and (b - 0x80000) % 65536 == 0 for b in bases)


def test_the_fake_kernel_refuses_a_veth_into_a_missing_namespace(kernel: FakeKernel) -> None:
    from labplan.ops import CreateVethPair

    op = CreateVethPair("lm7-v0x0", "lm7-n0", "eth0", None, 1500, 0x10007, "labmgr:lm7")
    with pytest.raises(FakeKernelError, match="no netns lm7-n0"):
        kernel.driver().ensure_veth(op)
