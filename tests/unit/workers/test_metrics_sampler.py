"""Which nodes the metrics sampler looks at, from the journal alone."""

from __future__ import annotations

from pathlib import Path

from labplan import codec, labfile
from labplan.compiler import compile_plan
from workers.journal import Journal
from workers.kernel.cgroups import CgroupLayout
from workers.metrics import Sampler

PAIR = {
    "labfile": 1,
    "name": "pair",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.10.0.0/24"}},
    "nodes": {"alpha": {"networks": {"lan": {}}}, "beta": {"networks": {"lan": {}}}},
}


def test_nodes_are_sampled_once_their_deployment_is_applied(tmp_path: Path) -> None:
    plan = codec.plan_to_dict(compile_plan(labfile.validate(PAIR), deployment=7))
    journal = Journal(tmp_path / "journal")
    journal.append("lm7", {"token": "lm7", "lab": "pair", "host": "local", "plan": plan})
    journal.append("lm7", {"node": "alpha", "pid": 4242, "start": 1, "uid_base": None})
    journal.append("lm7", {"node": "beta", "pid": 4343, "start": 1, "uid_base": None})
    sampler = Sampler(tmp_path / "journal", layout=CgroupLayout(tmp_path / "cg", {}))

    assert sampler.nodes() == []  # still being applied: its journal moves at every op

    journal.append("lm7", {"state": "applied"})
    journal.close("lm7")

    assert sorted((n.node, n.pid) for n in sampler.nodes()) == [("alpha", 4242), ("beta", 4343)]
