"""The agent's jobs on the in-memory kernel: what the control plane hears (the `send`
seam), duplicates, redeploys, drift, and finishing a crashed job on start."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from labplan.messages import ControlTask
from tests.unit.workers.fake_kernel import ALL_FACTS, Crash, CrashingDriver, FakeDriver, FakeKernel
from tests.unit.workers.labs import CAMPUS, plan_dict
from workers.agent import Agent
from workers.executor import Executor, NodeReport

Sent = list[tuple[str, dict[str, Any]]]


def fake_observe(node: NodeReport) -> list[dict[str, Any]]:
    return [
        {"ifname": i.name, "mac": "", "addresses": list(i.addresses)}
        for i in node.interfaces
        if i.name != "lo"
    ]


@pytest.fixture
def sent() -> Sent:
    return []


def make_agent(kernel: FakeKernel, tmp_path: Path, sent: Sent, driver: Any = None) -> Agent:
    executor = Executor(tmp_path, driver or kernel.driver, facts=ALL_FACTS)
    return Agent(executor, lambda task, kwargs: sent.append((task, kwargs)), "local", fake_observe)


def results(sent: Sent) -> list[dict[str, Any]]:
    return [kw for task, kw in sent if task == ControlTask.DEPLOYMENT_RESULT]


def steps(sent: Sent) -> list[dict[str, Any]]:
    return [kw for task, kw in sent if task == ControlTask.DEPLOYMENT_STEP]


def pids(result: dict[str, Any]) -> dict[str, int]:
    return {node["name"]: node["pid"] for node in result["nodes"]}


def test_apply_reports_grouped_steps_then_the_observed_nodes(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    agent = make_agent(kernel, tmp_path, sent)

    agent.run("t1", "apply", {"deployment": 7, "plan": plan_dict(), "previous": None})

    assert [task for task, _ in sent][-1] == "labmgr.control.deployment_result"
    assert [(s["seq"], s["total"], s["name"], s["status"]) for s in steps(sent)] == [
        (1001, 4, "namespaces", "done"),
        (1002, 4, "networks", "done"),
        (1003, 4, "links", "done"),
        (1004, 4, "nodes", "done"),
    ]
    assert steps(sent)[0]["target"] == "3 create_netns, 4 create_cgroup, 2 set_cgroup_limit"
    assert steps(sent)[3]["target"] == "3 spawn_node"
    [result] = results(sent)
    assert result["ok"] is True and result["action"] == "apply"
    web = next(n for n in result["nodes"] if n["name"] == "web")
    assert web["netns"] == "lm7-n2"
    assert web["interfaces"] == [
        {"ifname": "eth0", "mac": "", "addresses": ["10.10.0.3/24"]},
        {"ifname": "eth1", "mac": "", "addresses": ["10.30.0.1/24"]},
    ]


def test_a_node_s_note_reaches_the_result_and_stays_across_a_redeploy(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    note = "the host's tree is read-only to this node: idmapped layers are turned off"
    kernel.spawn_notes["web"] = note
    agent = make_agent(kernel, tmp_path, sent)
    plan = plan_dict()
    agent.run("t1", "apply", {"deployment": 7, "plan": plan})
    kernel.spawn_notes.clear()  # a node started now would have no note
    agent.run("t2", "apply", {"deployment": 7, "plan": plan, "previous": plan})

    first, again = results(sent)
    assert pids(again) == pids(first)  # kept running: its note comes from the journal
    for result in (first, again):
        notes = {n["name"]: n["note"] for n in result["nodes"]}
        assert notes == {"db": "", "probe": "", "web": note}


def test_a_duplicate_delivery_reports_the_same_result_and_changes_nothing(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    agent = make_agent(kernel, tmp_path, sent)
    kwargs = {"deployment": 7, "plan": plan_dict(), "previous": None}
    agent.run("t1", "apply", kwargs)
    first, before, calls = list(sent), kernel.objects(), kernel.calls

    agent.run("t1", "apply", kwargs)

    assert sent[len(first) :] == first
    assert kernel.objects() == before and kernel.calls == calls


def test_a_plan_for_another_deployment_is_refused_with_the_reason(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    agent = make_agent(kernel, tmp_path, sent)

    agent.run("t1", "apply", {"deployment": 8, "plan": plan_dict(), "previous": None})

    assert results(sent) == [
        {
            "deployment": 8,
            "action": "apply",
            "ok": False,
            "error": "the plan is for deployment lm7, not lm8",
            "nodes": [],
        }
    ]
    assert kernel.objects() == []


def test_a_failed_apply_reports_the_rollback_and_a_failed_result(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    kernel.fail_at = 20
    agent = make_agent(kernel, tmp_path, sent)

    agent.run("t1", "apply", {"deployment": 7, "plan": plan_dict(), "previous": None})

    [result] = results(sent)
    assert result["ok"] is False
    assert "injected failure at call 20; the deployment was rolled back" in result["error"]
    assert [s["status"] for s in steps(sent)][-2:] == ["failed", "rolled back"]
    assert steps(sent)[-1]["seq"] == 1000 + steps(sent)[-1]["total"]
    assert kernel.objects() == []


def with_nodes(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(CAMPUS)
    for name, node in changes.items():
        if node is None:
            del data["nodes"][name]
        else:
            data["nodes"][name] = node
    return data


def test_a_redeploy_keeps_unchanged_nodes_and_replaces_changed_ones(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    agent = make_agent(kernel, tmp_path, sent)
    old = plan_dict()
    agent.run("t1", "apply", {"deployment": 7, "plan": old, "previous": None})
    before = pids(results(sent)[0])
    changed = with_nodes(web={**CAMPUS["nodes"]["web"], "limits": {"pids": 60}}, probe=None)
    # probe (lm7-n1) goes: web moves from index 2 to 1, db (index 0) is untouched

    agent.run("t2", "apply", {"deployment": 7, "plan": plan_dict(changed), "previous": old})

    after = pids(results(sent)[1])
    assert after["db"] == before["db"]
    assert after["web"] != before["web"]
    assert "probe" not in after
    assert len(kernel.processes) == 2
    assert sorted(kernel.netns) == ["lm7-n0", "lm7-n1"]
    redeploy = next(s for s in steps(sent) if s["name"] == "redeploy")
    assert redeploy["seq"] == 2001
    assert redeploy["target"] == "kept 1, replaced 1, added 0, removed 1 nodes"


def test_destroy_then_a_check_shows_what_is_missing(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    agent = make_agent(kernel, tmp_path, sent)
    plan = plan_dict()
    agent.run("t1", "apply", {"deployment": 7, "plan": plan, "previous": None})
    FakeDriver(kernel).remove_netns("lm7-n0")
    FakeDriver(kernel).remove_link("lm7-b0")

    agent.run("t2", "check", {"deployment": 7, "plan": plan})
    agent.run("t3", "destroy", {"deployment": 7, "token": "lm7"})

    drift = next(kw for task, kw in sent if task == "labmgr.control.drift")
    assert drift["missing"] == ["netns lm7-n0", "link lm7-b0", "link lm7-v0x0"]
    assert drift["extra"] == []
    assert results(sent)[-1] == {
        "deployment": 7,
        "action": "destroy",
        "ok": True,
        "error": "",
        "nodes": [],
    }
    assert kernel.objects() == []


def test_destroying_what_is_already_gone_succeeds(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    make_agent(kernel, tmp_path, sent).run("t1", "destroy", {"deployment": 9, "token": "lm9"})

    assert results(sent)[0]["ok"] is True


@pytest.mark.parametrize("crash_at", [3, 25, 44])
def test_on_start_an_apply_cut_by_a_crash_is_finished_and_reported_once(
    kernel: FakeKernel, tmp_path: Path, sent: Sent, crash_at: int
) -> None:
    crashing = make_agent(kernel, tmp_path, sent, lambda: CrashingDriver(kernel, crash_at))
    kwargs = {"deployment": 7, "plan": plan_dict(), "previous": None}
    with pytest.raises(Crash):
        crashing.run("t1", "apply", kwargs)
    kernel.calls = 0
    sent.clear()

    agent = make_agent(kernel, tmp_path, sent)
    done = agent.recover()
    agent.run("t1", "apply", kwargs)  # the message, delivered again later

    assert done == ["apply t1 run again"]
    first, again = results(sent)
    assert first == again and first["ok"] is True
    assert len(kernel.processes) == 3


def test_on_start_a_journal_left_mid_apply_by_hand_is_converged(
    kernel: FakeKernel, tmp_path: Path, sent: Sent
) -> None:
    crashing = Executor(tmp_path, lambda: CrashingDriver(kernel, 30), facts=ALL_FACTS)
    with pytest.raises(Crash):
        crashing.apply(plan_dict(), "local")
    kernel.calls = 0

    done = make_agent(kernel, tmp_path, sent).recover()

    assert done == ["apply lm7 converged"]
    assert results(sent)[0]["ok"] is True and len(results(sent)[0]["nodes"]) == 3
