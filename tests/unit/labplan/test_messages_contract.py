"""docs/messages.md says what labplan.messages defines: every task, with the arguments of
its payload, and no task the contract does not have."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from labplan import messages

DOC = Path(__file__).resolve().parents[3] / "docs" / "messages.md"
ROW = re.compile(r"^\| `(labmgr\.(?:agent|control)\.\w+)` \|(.*)$", re.MULTILINE)
ARGUMENT = re.compile(r"(?:^|[`,]\s*)(\w+):")


def documented() -> dict[str, str]:
    """Each task the document has a table row for, with the rest of its row."""
    return {name: rest for name, rest in ROW.findall(DOC.read_text())}


def arguments(row: str) -> set[str]:
    """The argument names of a row's first cell that lists `name: type` pairs."""
    for cell in row.split(" | "):
        names = set(ARGUMENT.findall(cell))
        if names:
            return names
    return set()


ALL_TASKS = [*messages.AgentTask, *messages.ControlTask, *messages.BeatTask]


def test_every_task_of_the_contract_is_documented_and_nothing_else_is() -> None:
    assert set(documented()) == {str(task) for task in ALL_TASKS}


@pytest.mark.parametrize("task", sorted(messages.ARGS), ids=str)
def test_a_tasks_documented_arguments_are_its_payloads_keys(task: str) -> None:
    payload = messages.ARGS[task]
    assert arguments(documented()[task]) == set(typing.get_type_hints(payload))


def test_queues_and_stream_keys_are_spelled_once() -> None:
    assert messages.host_queue("lab-1") == "host.lab-1"
    assert messages.terminal_keys("s") == ("labmgr:term:s:in", "labmgr:term:s:out")
    assert messages.pcap_key("c") == "labmgr:capture:c:pcap"
    assert messages.reservation_cgroup(36) == "r10"
