"""Labfile 2: a node that joins another node's network namespace (`network_mode:
container:NODE`, as a Kubernetes pod's containers share one): what the plan makes for it,
and every way of writing it that cannot be, refused by its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labplan import bounds, labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.ops import CreateNetns, SpawnNode

POD: dict[str, Any] = {
    "labfile": 2,
    "name": "pod",
    "networks": {"lan": {"subnet": "10.10.0.0/24"}},
    "nodes": {
        "app": {"networks": {"lan": {}}},
        "sidecar": {"network_mode": "container:app"},
    },
}


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def with_sidecar(**sidecar: Any) -> dict[str, Any]:
    document = copy.deepcopy(POD)
    document["nodes"]["sidecar"].update(sidecar)
    return document


def test_the_sidecar_runs_in_the_apps_netns_and_answers_to_its_address() -> None:
    lab = labfile.validate(POD)
    plan = compile_plan(lab, deployment=4)
    ops = plan.hosts[0].ops

    assert [op.netns for op in ops if isinstance(op, CreateNetns)] == ["lm4-n0"]
    spawns = {op.node: op for op in ops if isinstance(op, SpawnNode)}
    assert (spawns["sidecar"].netns, spawns["sidecar"].joins) == ("lm4-n0", "app")
    assert spawns["sidecar"].cgroup == "lm4/n1"  # its own cgroup, processes and hostname
    assert spawns["sidecar"].hostname == "sidecar"
    assert ("10.10.0.2", "sidecar") in spawns["app"].hosts
    assert bounds.lab_objects(lab) == bounds.ops_objects(ops)


def test_it_exports_as_it_was_written_and_needs_labfile_2() -> None:
    document = labfile.dump(labfile.validate(POD))

    assert document["nodes"]["sidecar"]["network_mode"] == "container:app"
    assert labfile.validate(document) == labfile.validate(POD)
    assert errors({**POD, "labfile": 1}) == [
        "nodes.sidecar.network_mode: network_mode is a labfile 2 key; write labfile: 2 at the "
        "top of the file to use it"
    ]


def test_it_follows_the_app_to_its_host() -> None:
    document = copy.deepcopy(POD)
    document["nodes"]["app"]["host"] = "lab2"
    plan = compile_plan(labfile.validate(document), deployment=4)

    assert [h.host for h in plan.hosts] == ["lab2"]
    assert errors(with_sidecar(host="lab3")) == [
        "nodes.sidecar.host: sidecar joins the network namespace of app, so it runs on app's "
        "host: give both the same host, or leave this one out"
    ]


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        (
            {"network_mode": "host"},
            'nodes.sidecar.network_mode: "host" is not a valid network_mode (container:NODE,',
        ),
        (
            {"network_mode": "container:ghost"},
            "nodes.sidecar.network_mode: ghost is not a node of this lab (nodes: app)",
        ),
        (
            {"network_mode": "container:sidecar"},
            "nodes.sidecar.network_mode: a node cannot join its own network namespace",
        ),
        (
            {"networks": {"lan": {}}},
            "nodes.sidecar.networks: sidecar joins the network namespace of app, so it has no "
            "networks of its own (give them to app)",
        ),
        (
            {"routes": [{"dst": "10.20.0.0/24", "via": "10.10.0.1"}]},
            "nodes.sidecar.routes: sidecar joins the network namespace of app, so it has no "
            "routes of its own (give them to app)",
        ),
    ],
)
def test_what_cannot_be_is_refused_by_its_field(sidecar: dict[str, Any], message: str) -> None:
    found = errors(with_sidecar(**sidecar))
    assert any(e.startswith(message) for e in found), found


def test_no_chains_no_host_namespace_and_no_links_of_its_own() -> None:
    document = copy.deepcopy(POD)
    document["nodes"]["third"] = {"network_mode": "container:sidecar"}
    assert errors(document) == [
        "nodes.third.network_mode: sidecar itself joins the network namespace of app: join app"
    ]

    document = copy.deepcopy(POD)
    document["networks"]["h"] = {"driver": "host"}
    document["nodes"]["app"] = {"networks": {"h": {}}, "privileged": True}
    assert errors(document) == [
        "nodes.sidecar.network_mode: app is in the host's network namespace; attach sidecar "
        "to that network instead"
    ]

    document = copy.deepcopy(POD)
    document["nodes"]["peer"] = {}
    document["links"] = [{"endpoints": ["sidecar:eth1", "peer:eth1"]}]
    assert errors(document) == [
        "nodes.sidecar.network_mode: sidecar joins the network namespace of app: a link ends "
        "on app, not on sidecar"
    ]
