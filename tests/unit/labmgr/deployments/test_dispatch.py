"""The dispatch seam sends named tasks, keyword arguments only, to the host's queue."""

from __future__ import annotations

from typing import Any

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout

from labmgr.deployments import dispatch
from tests.unit.labmgr.conftest import Broker


@pytest.fixture
def sent(broker: Broker) -> list[tuple[str, dict[str, Any], str]]:
    broker.answer = {"exit": 1, "stdout": "out", "stderr": "err"}
    return broker.sent


def test_each_job_goes_to_its_hosts_queue_by_name(sent: list[Any]) -> None:
    dispatch.apply(host="lab-1", deployment=3, plan={"p": 1}, previous=None)
    dispatch.destroy(host="lab-1", deployment=3, token="lm3")
    dispatch.check(host="lab-2", deployment=3, plan={"p": 1})
    dispatch.sweep(host="lab-1", live=["lm3"])
    dispatch.terminal_open(host="lab-1", session="s", token="lm3", node="a", cols=80, rows=24)
    assert [(name, queue) for name, _, queue in sent] == [
        ("labmgr.agent.apply", "host.lab-1"),
        ("labmgr.agent.destroy", "host.lab-1"),
        ("labmgr.agent.check", "host.lab-2"),
        ("labmgr.agent.sweep", "host.lab-1"),
        ("labmgr.agent.terminal_open", "host.lab-1"),
    ]
    assert sent[0][1] == {"deployment": 3, "plan": {"p": 1}, "previous": None}


def test_exec_waits_for_the_agents_answer(sent: list[Any]) -> None:
    outcome = dispatch.exec_(
        host="lab-1", deployment=3, token="lm3", node="a", argv=["id"], timeout=5
    )
    assert outcome == {"exit": 1, "stdout": "out", "stderr": "err"}
    assert sent[0][:2] == (
        "labmgr.agent.exec",
        {"deployment": 3, "token": "lm3", "node": "a", "argv": ["id"], "timeout": 5},
    )


def test_exec_without_an_answer_says_the_host_did_not_answer(broker: Broker) -> None:
    broker.answer = CeleryTimeout()
    with pytest.raises(dispatch.HostUnreachable) as refused:
        dispatch.exec_(host="lab-1", deployment=3, token="lm3", node="a", argv=["id"], timeout=1)
    assert refused.value.message == "Host lab-1 did not run the command in time."
