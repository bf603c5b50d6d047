"""Redeploy on the real kernel: an unchanged node keeps its process and its links, a
changed one is replaced, a removed one is gone, and destroy leaves nothing."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from labplan import naming
from workers.agent import Agent
from workers.wiring import kernel_executor

from .conftest import Lab, compile_dict, leftovers, new_deployment

LAB: dict[str, Any] = {
    "labfile": 1,
    "name": "redeploy",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.250.0.0/24"}},
    "nodes": {
        "a": {"networks": {"lan": {}}},
        "b": {"networks": {"lan": {}}, "limits": {"pids": 32}},
        "c": {"networks": {"lan": {}}},
    },
}


class Redeploys:
    """One deployment applied, and applied again, through a real agent's apply."""

    def __init__(self, data_dir: Path) -> None:
        self.deployment = new_deployment()
        self.token = naming.deployment_token(self.deployment)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.executor = kernel_executor(data_dir)
        self.agent = Agent(
            self.executor, lambda task, kwargs: self.sent.append((task, kwargs)), "local"
        )

    def apply(self, data: dict[str, Any], task_id: str, previous: Any = None) -> dict[str, Any]:
        """The nodes the apply reports, by name; it must have succeeded."""
        plan = compile_dict(data, self.deployment)
        self.agent.run(
            task_id, "apply", {"deployment": self.deployment, "plan": plan, "previous": previous}
        )
        result = self.sent[-1][1]
        assert result["ok"] is True, result["error"]
        return {n["name"]: n for n in result["nodes"]}


def test_a_redeploy_changes_only_the_difference(data_dir: Path) -> None:
    run = Redeploys(data_dir)

    first_plan = compile_dict(LAB, run.deployment)
    try:
        before = run.apply(LAB, "r1")
        edited = copy.deepcopy(LAB)
        edited["nodes"]["b"]["limits"] = {"pids": 64}
        edited["nodes"]["c"] = {"networks": {"lan": {}}, "environment": {"ROLE": "new"}}
        edited["nodes"]["d"] = {"networks": {"lan": {}}}

        after = run.apply(edited, "r2", previous=first_plan)

        assert after["a"]["pid"] == before["a"]["pid"]  # kept, with its link
        assert after["b"]["pid"] != before["b"]["pid"]
        assert after["c"]["pid"] != before["c"]["pid"]
        assert os.path.exists(f"/proc/{before['a']['pid']}")
        assert not os.path.exists(f"/proc/{before['b']['pid']}")
        lab = Lab(run.executor, run.token, _result(run.executor, run.token))
        assert lab.ping("a", after["d"]["interfaces"][0]["addresses"][0].split("/")[0])
        assert lab.run("a", "cat", "/etc/hosts").stdout.count("\td\n") == 1
        role = run.agent.run(
            None,
            "exec",
            {
                "deployment": run.deployment,
                "token": run.token,
                "node": "c",
                "argv": ["sh", "-c", "echo $ROLE"],
                "timeout": 10,
            },
        )
        assert role == {"exit": 0, "stdout": "new\n", "stderr": ""}
    finally:
        run.agent.run("r3", "destroy", {"deployment": run.deployment, "token": run.token})
    assert run.sent[-1][1]["ok"] is True
    assert leftovers(run.token) == []


def _result(executor: Any, token: str) -> Any:
    """The deployment's nodes as `Lab` wants them, from the executor's status."""
    from workers.executor import ApplyResult
    from workers.status import status

    record, nodes, _ = status(executor, token)
    return ApplyResult(token, record.lab, "local", 0.0, nodes)


LINKED: dict[str, Any] = {
    "labfile": 2,
    "name": "relinked",
    "nodes": {"r1": {}, "r2": {}, "r3": {}},
    "links": [
        {"endpoints": ["r1:eth1", "r2:eth1"], "ipv4": ["10.251.12.1/30", "10.251.12.2/30"]},
        {"endpoints": ["r2:eth2", "r3:eth1"], "ipv4": ["10.251.23.1/30", "10.251.23.2/30"]},
    ],
}


def test_a_redeploy_remakes_a_link_into_the_node_that_stays(data_dir: Path) -> None:
    run = Redeploys(data_dir)

    try:
        before = run.apply(LINKED, "l1")
        edited = copy.deepcopy(LINKED)
        edited["nodes"]["r1"] = {"environment": {"ROLE": "new"}}
        edited["links"][1]["mtu"] = 9000

        after = run.apply(edited, "l2", previous=compile_dict(LINKED, run.deployment))

        # r1 is new; r2 and r3 are remade for their changed link; the link r2 had with
        # r1 is made again into r2's namespace and carries traffic.
        assert after["r1"]["pid"] != before["r1"]["pid"]
        lab = Lab(run.executor, run.token, _result(run.executor, run.token))
        assert lab.ping("r2", "10.251.12.1") and lab.ping("r3", "10.251.23.1")
        assert "mtu 9000" in lab.run("r3", "ip", "link", "show", "eth1").stdout
    finally:
        run.agent.run("l3", "destroy", {"deployment": run.deployment, "token": run.token})
    assert run.sent[-1][1]["ok"] is True
    assert leftovers(run.token) == []


def test_a_redeploy_keeps_the_far_end_of_a_remade_node_running(data_dir: Path) -> None:
    run = Redeploys(data_dir)

    try:
        before = run.apply(LINKED, "k1")
        edited = copy.deepcopy(LINKED)
        edited["nodes"]["r1"] = {"limits": {"pids": 64}}

        after = run.apply(edited, "k2", previous=compile_dict(LINKED, run.deployment))

        assert after["r1"]["pid"] != before["r1"]["pid"]
        assert after["r2"]["pid"] == before["r2"]["pid"]  # kept: its end is made again
        lab = Lab(run.executor, run.token, _result(run.executor, run.token))
        assert lab.ping("r2", "10.251.12.1")
        assert "10.251.12.2/30" in lab.run("r2", "ip", "addr", "show", "eth1").stdout
    finally:
        run.agent.run("k3", "destroy", {"deployment": run.deployment, "token": run.token})
    assert run.sent[-1][1]["ok"] is True
    assert leftovers(run.token) == []
