"""No task, queue, stream key or Channels group of the contract is spelled out in the
code: labmgr, workers and the rest of labplan take each from labplan.messages, so a
rename happens in one place and the two sides cannot drift apart."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from labplan import messages

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("labmgr", "workers", "labplan")
CONTRACT = ROOT / "labplan" / "messages.py"

TASK_NAMES = {
    str(task) for task in (*messages.AgentTask, *messages.ControlTask, *messages.BeatTask)
}
# A string equal to one of these, or starting with one of PREFIXES, is a name of the
# contract (a task, a queue, or what a key, a group or a task's name is built from).
NAMES = TASK_NAMES | {
    messages.CONTROL_QUEUE,
    messages.HOST_QUEUE_PREFIX,
    messages.HOST_GROUP_PREFIX,
    messages.LAB_GROUP_PREFIX,
}
PREFIXES = (
    messages.AGENT_TASK_PREFIX,
    messages.CONTROL_TASK_PREFIX,
    messages.TERMINAL_KEY_PREFIX,
    messages.CAPTURE_KEY_PREFIX,
)


def sources() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != CONTRACT and "migrations" not in path.parts:
                yield path


def is_contract_name(text: str) -> bool:
    return text in NAMES or text.startswith(PREFIXES)


def spelled_out(path: Path) -> list[str]:
    """`file:line: 'text'` for each string of `path` that is a name of the contract; a
    string standing alone as a statement (a docstring) documents, it does not name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    prose = {
        id(statement.value)
        for statement in ast.walk(tree)
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
    }
    names = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in prose
        and is_contract_name(node.value)
    ]
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    ordered = sorted(names, key=lambda node: (node.lineno, node.col_offset))
    return [f"{where}:{node.lineno}: {node.value!r}" for node in ordered]


def test_no_task_queue_or_stream_name_is_spelled_outside_the_contract() -> None:
    found = [hit for path in sources() for hit in spelled_out(path)]
    assert found == [], "use labplan.messages instead of:\n" + "\n".join(found)


def test_the_scan_finds_a_name_planted_in_a_call_an_fstring_or_a_table(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""A docstring may say labmgr.agent.apply."""\n'
        'send("labmgr.agent.apply", queue="control")\n'
        'queue = f"host.{slug}"\n'
        'ROUTES = {"labmgr.control.*": {}}\n'
        'key = f"labmgr:term:{session}:in"\n'
        'hostname = "control-1"\n'
    )
    assert spelled_out(planted) == [
        f"{planted}:2: 'labmgr.agent.apply'",
        f"{planted}:2: 'control'",
        f"{planted}:3: 'host.'",
        f"{planted}:4: 'labmgr.control.*'",
        f"{planted}:5: 'labmgr:term:'",
    ]


def test_the_contracts_names_are_built_from_its_prefixes() -> None:
    assert all(str(task).startswith(messages.AGENT_TASK_PREFIX) for task in messages.AgentTask)
    control = (*messages.ControlTask, *messages.BeatTask)
    assert all(str(task).startswith(messages.CONTROL_TASK_PREFIX) for task in control)
    session_in, session_out = messages.terminal_keys("s")
    assert session_in.startswith(messages.TERMINAL_KEY_PREFIX)
    assert session_out.startswith(messages.TERMINAL_KEY_PREFIX)
    assert messages.pcap_key("c").startswith(messages.CAPTURE_KEY_PREFIX)
    assert messages.host_queue("lab-1").startswith(messages.HOST_QUEUE_PREFIX)
    assert (messages.lab_group(7), messages.host_group("lab-1")) == ("lab.7", "host.lab-1")
