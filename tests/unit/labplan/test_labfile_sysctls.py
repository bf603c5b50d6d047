"""Labfile 2: a node's own net.* sysctls: set in its network namespace before it starts,
exported and imported from both tools' files, and refused by field where they are not the
node's to set."""

from __future__ import annotations

import copy
import textwrap
from typing import Any

import pytest
import yaml

from labplan import labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.interop import from_labfile, to_labfile
from labplan.ops import SetSysctl, SpawnNode
from labplan.render import render_plan

ROUTER: dict[str, Any] = {
    "labfile": 2,
    "name": "router",
    "networks": {"lan": {"subnet": "10.10.0.0/24"}},
    "nodes": {
        "r": {
            "image": "frr:10",
            "networks": {"lan": {}},
            "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.conf.eth0/10.rp_filter": "0"},
        }
    },
}


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def with_sysctls(sysctls: Any) -> dict[str, Any]:
    document = copy.deepcopy(ROUTER)
    document["nodes"]["r"]["sysctls"] = sysctls
    return document


def test_the_sysctls_are_set_in_the_nodes_netns_before_it_starts() -> None:
    ops = compile_plan(labfile.validate(ROUTER), deployment=4).hosts[0].ops

    sysctls = [op for op in ops if isinstance(op, SetSysctl)]
    assert sysctls == [
        SetSysctl("r", "lm4-n0", "net.ipv4.conf.eth0/10.rp_filter", "0"),
        SetSysctl("r", "lm4-n0", "net.ipv4.ip_forward", "1"),
    ]
    spawn = next(i for i, op in enumerate(ops) if isinstance(op, SpawnNode))
    assert all(ops.index(op) < spawn for op in sysctls)
    text = render_plan(compile_plan(labfile.validate(ROUTER), deployment=4))
    assert "ip netns exec lm4-n0 sysctl -qw net.ipv4.ip_forward=1" in text


def test_they_export_and_need_labfile_2() -> None:
    document = labfile.dump(labfile.validate(ROUTER))

    assert document["nodes"]["r"]["sysctls"] == {
        "net.ipv4.conf.eth0/10.rp_filter": "0",
        "net.ipv4.ip_forward": "1",
    }
    assert labfile.validate(document) == labfile.validate(ROUTER)
    assert errors({**ROUTER, "labfile": 1}) == [
        "nodes.r.sysctls: sysctls is a labfile 2 key; write labfile: 2 at the top of the file "
        "to use it"
    ]


@pytest.mark.parametrize(
    ("sysctls", "message"),
    [
        ({"kernel.hostname": "x"}, "nodes.r.sysctls.kernel.hostname: "),
        ({"net/ipv4/ip_forward": 1}, "nodes.r.sysctls.net/ipv4/ip_forward: "),
        ({"net..ipv4": 1}, "nodes.r.sysctls.net..ipv4: "),
        ({"net.ipv4.ip_forward": "1\nkernel.panic=1"}, "nodes.r.sysctls.net.ipv4.ip_forward: "),
        ({"net.ipv4.ip_forward": True}, "nodes.r.sysctls.net.ipv4.ip_forward: "),
    ],
)
def test_what_is_not_the_nodes_own_is_refused_by_its_field(sysctls: Any, message: str) -> None:
    found = errors(with_sysctls(sysctls))
    assert len(found) == 1 and found[0].startswith(message), found


def test_a_node_in_the_hosts_or_anothers_namespace_has_none() -> None:
    document = with_sysctls({"net.ipv4.ip_forward": 1})
    document["networks"]["h"] = {"driver": "host"}
    document["nodes"]["r"]["networks"] = {"h": {}}
    document["nodes"]["r"]["privileged"] = True
    assert errors(document) == [
        "nodes.r.sysctls: r is on the h network, in the host's network namespace: the host's "
        "sysctls are not a lab's to set"
    ]

    document = copy.deepcopy(ROUTER)
    document["nodes"]["side"] = {
        "network_mode": "container:r",
        "sysctls": {"net.core.somaxconn": 9},
    }
    assert errors(document) == [
        "nodes.side.sysctls: side joins the network namespace of r, so it has no sysctls of "
        "its own (give them to r)"
    ]


def test_both_tools_files_bring_their_net_sysctls_and_note_the_rest() -> None:
    compose = to_labfile(
        textwrap.dedent(
            """
            name: routed
            services:
              r:
                image: frr:10
                sysctls: [net.ipv4.ip_forward=1, kernel.shmmax=1]
            """
        )
    )
    assert compose.tree["labfile"] == 2
    assert compose.tree["nodes"]["r"]["sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert (
        "services.r.sysctls.kernel.shmmax: not carried over: only net.* sysctls are a "
        "node's own" in [str(n) for n in compose.notes]
    )
    lab = labfile.validate(compose.tree)
    assert yaml.safe_load(from_labfile(lab, "compose").text)["services"]["r"]["sysctls"] == {
        "net.ipv4.ip_forward": "1"
    }

    clab = to_labfile(
        textwrap.dedent(
            """
            name: routed
            topology:
              nodes:
                r: {kind: linux, image: frr:10, sysctls: {net.ipv6.conf.all.forwarding: 1}}
            """
        )
    )
    assert clab.tree["nodes"]["r"]["sysctls"] == {"net.ipv6.conf.all.forwarding": "1"}
    exported = yaml.safe_load(from_labfile(labfile.validate(clab.tree), "containerlab").text)
    assert exported["topology"]["nodes"]["r"]["sysctls"] == {"net.ipv6.conf.all.forwarding": "1"}
