"""A node's `exec` commands at apply: run inside the started nodes after every spawn, in
order, each its own step with its output; a failing one rolls the deployment back, naming
the field; a node a redeploy keeps running does not run them again."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from labplan import codec
from tests.unit.workers.fake_kernel import ALL_FACTS, FakeKernel
from tests.unit.workers.labs import plan_dict
from workers.diff import diff, prune
from workers.errors import ApplyError
from workers.executor import Executor, Step
from workers.reports import phases

LAB: dict[str, Any] = {
    "labfile": 2,
    "name": "configured",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.10.0.0/24"}},
    "nodes": {
        "a": {
            "networks": {"lan": {}},
            "exec": [["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"], ["touch", "/ready"]],
        },
        "b": {"networks": {"lan": {}}, "exec": [["sh", "-c", "echo b is up"]]},
    },
}


def executor(kernel: FakeKernel, tmp_path: Path, steps: list[Step]) -> Executor:
    return Executor(tmp_path, kernel.driver, facts=ALL_FACTS, progress=steps.append)


def test_the_commands_run_in_order_after_every_node_started(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    kernel.exec_answers[("sh", "-c", "echo b is up")] = (0, "b is up\n")
    steps: list[Step] = []

    executor(kernel, tmp_path, steps).apply(plan_dict(LAB), "local")

    assert kernel.execs == [
        ("a", ("ip", "addr", "add", "192.0.2.1/32", "dev", "lo")),
        ("a", ("touch", "/ready")),
        ("b", ("sh", "-c", "echo b is up")),
    ]
    kinds = [s.kind for s in steps]
    assert kinds[-3:] == ["exec_in_node"] * 3
    assert kinds.index("exec_in_node") > max(i for i, k in enumerate(kinds) if k == "spawn_node")
    last = steps[-1]
    assert (last.target, last.state, last.detail) == (
        "b: sh -c 'echo b is up'",
        "done",
        "b is up\n",
    )


def test_each_command_is_a_step_of_its_own_in_the_exec_phase() -> None:
    plan = codec.plan_from_dict(plan_dict(LAB)).hosts[0]
    assert phases(plan)[-3:] == ["exec", "exec", "exec"]


def test_a_failing_command_rolls_back_and_names_its_field(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    kernel.exec_answers[("touch", "/ready")] = (1, "touch: /ready: Read-only file system\n")
    steps: list[Step] = []

    with pytest.raises(ApplyError) as failed:
        executor(kernel, tmp_path, steps).apply(plan_dict(LAB), "local")

    message = str(failed.value)
    assert message.startswith(
        "ApplyError: nodes.a.exec.1: touch /ready exited 1: touch: /ready: Read-only file system"
    )
    assert message.endswith("the deployment was rolled back")
    failed_step = next(s for s in steps if s.state == "failed")
    assert failed_step.target == "a: touch /ready"
    assert "Read-only file system" in failed_step.detail
    assert ("b", ("sh", "-c", "echo b is up")) not in kernel.execs  # never reached
    assert kernel.objects() == []


def test_a_redeploy_runs_only_the_commands_of_the_nodes_it_starts(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    steps: list[Step] = []
    run = executor(kernel, tmp_path, steps)
    run.apply(plan_dict(LAB), "local")
    kernel.execs.clear()
    changed = copy.deepcopy(LAB)
    changed["nodes"]["b"]["exec"] = [["sh", "-c", "echo b again"]]
    # As the agent redeploys: prune what the diff says changed, then apply.
    before, after = (codec.plan_from_dict(plan_dict(d)).hosts[0] for d in (LAB, changed))
    change = diff(before, after)
    assert (change.kept, change.replaced) == (("a",), ("b",))
    prune(kernel.driver(), change, after.deployment, lambda name: tmp_path / name, print)

    run.apply(plan_dict(changed), "local")

    # a is kept running: its commands ran when it started; b's definition changed.
    assert kernel.execs == [("b", ("sh", "-c", "echo b again"))]
    kept = [s for s in steps[-3:] if s.target.startswith("a: ")]
    assert [s.detail for s in kept] == ["kept running: not run again"] * 2


def test_a_very_long_output_keeps_its_end(kernel: FakeKernel, tmp_path: Path) -> None:
    kernel.exec_answers[("touch", "/ready")] = (0, "x" * 10_000 + "the end\n")
    steps: list[Step] = []

    executor(kernel, tmp_path, steps).apply(plan_dict(LAB), "local")

    shown = next(s.detail for s in steps if s.target == "a: touch /ready")
    assert shown.endswith("the end\n") and shown.startswith("…") and len(shown) == 4001
