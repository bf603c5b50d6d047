"""The examples: each validates, compiles to a plan an agent accepts, and renders to its
golden text (UPDATE_GOLDEN=1 rewrites the golden files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labplan.codec import plan_from_dict, plan_to_dict
from labplan.compiler import compile_plan
from labplan.labfile import load
from labplan.model import Labfile
from labplan.ops import Plan
from labplan.render import render_plan, render_teardown_plan

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"
# Test addresses (192.0.2.0/24, RFC 5737): written into the plan's text, never used.
UNDERLAY = {"node-a": "192.0.2.1", "node-b": "192.0.2.2"}
EXPECTED = {
    "cgroup-limits",
    "host-network",
    "internal-bridge",
    "iperf3-shaped",
    "ipvlan-modes",
    "macvlan-modes",
    "namespaces",
    "none-network",
    "ospf-triangle",
    "ospf-dualstack",
    "bgp-dualstack",
    "dual-stack-nat",
    "overlay-two-hosts",
    "shaped-link",
    "two-bridges",
    "two-nodes",
    "vlans",
}


def example_lab(path: Path) -> Labfile:
    return load(path.read_bytes())


def example_plan(path: Path) -> Plan:
    return compile_plan(example_lab(path), deployment=1, underlay=UNDERLAY)


def test_every_course_idea_has_an_example() -> None:
    assert {p.stem for p in EXAMPLES} >= EXPECTED


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_validates_and_explains_itself(path: Path) -> None:
    lab = example_lab(path)
    assert lab.name == path.stem
    header = path.read_text().split("\nlabfile:")[0]
    assert "What to observe:" in header and "How:" in header


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_compiles_to_a_plan_the_agent_accepts(path: Path) -> None:
    plan = example_plan(path)
    assert plan_from_dict(plan_to_dict(plan)) == plan


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_renders_to_its_golden_commands(path: Path) -> None:
    plan = example_plan(path)
    text = render_plan(plan) + "\n" + render_teardown_plan(plan)
    golden = GOLDEN / f"{path.stem}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden.name}; run with UPDATE_GOLDEN=1"
    assert text == golden.read_text()
