"""The labfile 2 `exec` key: commands run inside a node once the lab is up."""

from __future__ import annotations

import pytest

from labplan import labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.ops import ExecInNode, SpawnNode
from labplan.render import render_plan


def lab(exec_: object, version: int = 2) -> dict[str, object]:
    return {"labfile": version, "name": "x", "nodes": {"a": {"exec": exec_}, "b": {}}}


def errors(data: object) -> list[str]:
    with pytest.raises(LabfileError) as refused:
        labfile.validate(data)
    return [str(e) for e in refused.value.errors]


def test_commands_are_kept_in_order_and_exported() -> None:
    commands = [["ip", "link", "set", "lo", "mtu", "9000"], ["sh", "-c", "echo up > /tmp/x"]]
    parsed = labfile.validate(lab(commands))

    assert parsed.node("a").exec == tuple(tuple(c) for c in commands)
    assert labfile.dump(parsed)["nodes"]["a"]["exec"] == commands
    assert "exec" not in labfile.dump(parsed)["nodes"]["b"]
    assert labfile.load(labfile.dumps(parsed)) == parsed
    assert parsed.version == 2


def test_a_labfile_1_file_is_told_to_say_labfile_2() -> None:
    assert errors(lab([["true"]], version=1)) == [
        "nodes.a.exec: exec is a labfile 2 key; write labfile: 2 at the top of the file to use it"
    ]


def test_every_bad_command_is_named_by_its_path() -> None:
    assert errors(lab([[], "ip link", [1], ["ok"]])) == [
        "nodes.a.exec.0: an exec command has at least 1 argument; this one has 0",
        'nodes.a.exec.1: "ip link" is not a list (write the exec command as a list of '
        "arguments, like [ip, link, set, eth1, mtu, '9000'])",
        "nodes.a.exec.2.0: 1 is not a string (quote it)",
    ]
    assert errors(lab([["true"]] * 65)) == [
        "nodes.a.exec: a node has at most 64 exec commands; this one has 65"
    ]


def test_the_plan_runs_them_after_every_spawn_and_renders_them() -> None:
    plan = compile_plan(labfile.validate(lab([["true"], ["sh", "-c", "a b"]])), deployment=4)
    host_ops = plan.hosts[0].ops
    execs = [op for op in host_ops if isinstance(op, ExecInNode)]
    last_spawn = max(i for i, op in enumerate(host_ops) if isinstance(op, SpawnNode))

    assert [(op.node, op.index, op.command) for op in execs] == [
        ("a", 0, ("true",)),
        ("a", 1, ("sh", "-c", "a b")),
    ]
    assert host_ops.index(execs[0]) > last_spawn
    assert execs[0].cgroup == "lm4/n0" and execs[0].timeout == 60
    rendered = render_plan(plan)
    assert (
        'timeout 60 nsenter --all --target "$(tail -n1 /sys/fs/cgroup/labmgr/lm4/n0/'
        "cgroup.procs)\" -- sh -c 'a b'" in rendered
    )
