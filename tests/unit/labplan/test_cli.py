"""`python -m labplan`: run as a user would, checking output and exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from labplan.codec import plan_from_dict

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def labplan(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labplan", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_prints_one_line_per_valid_file() -> None:
    result = labplan("validate", "examples/two-nodes.yaml", "examples/ipvlan-modes.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "examples/two-nodes.yaml: ok - lab two-nodes, 2 nodes, 1 network (bridge)",
        "examples/ipvlan-modes.yaml: ok - lab ipvlan-modes, 4 nodes, 4 networks (bridge, ipvlan)",
    ]


def test_validate_prints_every_error_with_the_file_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "labfile: 1\nname: bad\nnodes:\n  a:\n    limits: {memory: 12Q}\n    colour: red\n"
    )
    result = labplan("validate", "examples/two-nodes.yaml", str(bad))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("examples/two-nodes.yaml: ok")
    assert any(line.startswith(f"{bad}: nodes.a.limits.memory: ") for line in lines[1:])
    assert any(line.startswith(f"{bad}: nodes.a.colour: ") for line in lines[1:])
    assert "Traceback" not in result.stderr


def test_validate_reads_json_from_stdin() -> None:
    document = json.dumps({"labfile": 1, "name": "piped", "nodes": {"a": {}}})
    result = labplan("validate", "-", stdin=document)
    assert result.returncode == 0
    assert result.stdout == "-: ok - lab piped, 1 node, 0 networks\n"


def test_an_unreadable_file_is_a_usage_error_without_a_traceback(tmp_path: Path) -> None:
    result = labplan("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"labplan: cannot read {tmp_path / 'missing.yaml'}: No such file or directory\n"
    )


def test_a_usage_error_exits_2() -> None:
    assert labplan().returncode == 2
    assert labplan("frobnicate").returncode == 2
    result = labplan("plan", "examples/two-nodes.yaml", "--deployment", "0")
    assert result.returncode == 2
    assert "must be in 1..2147483648" in result.stderr
    assert labplan("plan", "x", "--host-address", "node-a").returncode == 2


def test_plan_prints_the_shell_rendering() -> None:
    result = labplan("plan", "examples/two-nodes.yaml", "--deployment", "36")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# lab two-nodes, deployment lm10\n")
    assert "ip netns add lm10-n0\n" in result.stdout
    assert "ip link add lm10-b0 type bridge\n" in result.stdout


def test_plan_prints_the_teardown_on_request() -> None:
    result = labplan("plan", "examples/two-nodes.yaml", "--teardown")
    assert result.returncode == 0
    assert "ip link delete group 65537\n" in result.stdout


def test_plan_json_is_a_plan_the_agent_accepts() -> None:
    result = labplan(
        "plan",
        "examples/overlay-two-hosts.yaml",
        "--json",
        "--host-address",
        "node-a=192.0.2.1",
        "--host-address",
        "node-b=192.0.2.2",
    )
    assert result.returncode == 0, result.stderr
    plan = plan_from_dict(json.loads(result.stdout))
    assert [h.host for h in plan.hosts] == ["node-a", "node-b"]


def test_plan_of_an_overlay_without_host_addresses_says_what_is_missing() -> None:
    result = labplan("plan", "examples/overlay-two-hosts.yaml")
    assert result.returncode == 1
    assert result.stdout == (
        "examples/overlay-two-hosts.yaml: networks.backbone: overlay network backbone spans"
        " hosts node-a, node-b, but no underlay address is known for node-a, node-b\n"
    )
    assert "--host-address HOST=IP" in result.stderr


def test_schema_prints_the_json_schema() -> None:
    result = labplan("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
