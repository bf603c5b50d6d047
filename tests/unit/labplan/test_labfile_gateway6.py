"""Labfile 2: a bridge's IPv6 gateway (`gateway6`): where it may be, the nodes' default
IPv6 route through it, and what the plan asks of the host (address, guard, NAT66)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labplan import labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.ops import AddAddress, AddRoute, GuardBridge, IsolateBridge, SetNat
from labplan.render import render_plan

ROUTED: dict[str, Any] = {
    "labfile": 2,
    "name": "routed6",
    "networks": {
        "lan": {"subnet": "10.10.0.0/24", "subnet6": "fd00:10::/64", "gateway6": "fd00:10::1"},
        "dmz": {"subnet": "10.20.0.0/24", "subnet6": "fd00:20::/64"},
    },
    "nodes": {
        "a": {"networks": {"dmz": {}, "lan": {}}},
        "b": {"networks": {"lan": {"ipv6": "fd00:10::2"}}},
        "c": {"networks": {"dmz": {}}},
    },
}


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def with_lan(**lan: Any) -> dict[str, Any]:
    document = copy.deepcopy(ROUTED)
    document["networks"]["lan"].update(lan)
    return document


def test_nodes_route_ipv6_through_the_first_network_with_a_gateway6() -> None:
    lab = labfile.validate(ROUTED)

    # a is on dmz first, which has no gateway6: its IPv4 default goes by dmz, IPv6 by lan.
    routes = {(r.dst, r.via) for r in lab.node("a").routes}  # type: ignore[union-attr]
    assert routes == {("0.0.0.0/0", "10.20.0.1"), ("::/0", "fd00:10::1")}
    assert {(r.dst, r.via) for r in lab.node("c").routes} == {  # type: ignore[union-attr]
        ("0.0.0.0/0", "10.20.0.1")
    }


def test_no_node_takes_the_gateway6_address_automatically() -> None:
    lab = labfile.validate(with_lan(gateway6="fd00:10::3"))

    # ::1 stays free as before, ::2 is b's, ::3 the gateway6's: a takes ::4.
    assert lab.node("a").attachment("lan").ipv6 == "fd00:10::4"  # type: ignore[union-attr]


def test_the_host_holds_the_gateway6_guards_it_and_nats_the_subnet6() -> None:
    ops = compile_plan(labfile.validate(ROUTED), deployment=4).hosts[0].ops

    lan, dmz = "lm4-b1", "lm4-b0"  # networks are numbered in name order
    guards = {op.bridge: op for op in ops if isinstance(op, GuardBridge)}
    assert guards[lan] == GuardBridge(lan, "10.10.0.1", "fd00:10::1")
    assert guards[dmz] == GuardBridge(dmz, "10.20.0.1", None)
    host_addresses = [op.address for op in ops if isinstance(op, AddAddress) and op.netns is None]
    assert "fd00:10::1/64" in host_addresses
    assert not [a for a in host_addresses if a.startswith("fd00:20:")]
    nats = {(op.bridge, op.subnet) for op in ops if isinstance(op, SetNat)}
    assert (lan, "fd00:10::/64") in nats and (dmz, "10.20.0.0/24") in nats
    assert AddRoute("lm4-n0", "::/0", "fd00:10::1") in ops


def test_the_plan_reads_as_ip6tables_and_sysctls() -> None:
    text = render_plan(compile_plan(labfile.validate(ROUTED), deployment=4))

    assert (
        "sysctl -qw net.ipv6.conf.lm4-b1.accept_dad=0 net.ipv6.conf.lm4-b1.disable_ipv6=0" in text
    )
    assert "ip addr add fd00:10::1/64 dev lm4-b1 nodad" in text
    assert "ip6tables -I INPUT -i lm4-b1 -d fd00:10::1 -p icmpv6" in text
    assert "ip6tables -t nat -A POSTROUTING -s fd00:10::/64 ! -o lm4-b1 -j MASQUERADE" in text
    assert "sysctl -qw net.ipv6.conf.all.forwarding=1" in text
    assert "ip -n lm4-n0 -6 route add default via fd00:10::1" in text


def test_an_internal_network_isolates_its_ipv6_too_and_nats_nothing() -> None:
    ops = compile_plan(labfile.validate(with_lan(internal=True)), deployment=4).hosts[0].ops

    isolated = {op.subnet for op in ops if isinstance(op, IsolateBridge)}
    assert isolated == {"10.10.0.0/24", "fd00:10::/64"}
    assert not [op for op in ops if isinstance(op, SetNat) and op.bridge == "lm4-b1"]


def test_the_export_keeps_the_gateway6_and_round_trips() -> None:
    document = labfile.dump(labfile.validate(ROUTED))

    assert document["networks"]["lan"]["gateway6"] == "fd00:10::1"
    assert "gateway6" not in document["networks"]["dmz"]
    assert labfile.validate(document) == labfile.validate(ROUTED)


@pytest.mark.parametrize(
    ("lan", "message"),
    [
        ({"gateway6": "fd00:11::1"}, "fd00:11::1 is not in the subnet fd00:10::/64"),
        ({"gateway6": "fd00:10::"}, "fd00:10:: is the network address of fd00:10::/64"),
        ({"gateway6": "10.10.0.1"}, '"10.10.0.1" is not an IPv6 address'),
        (
            {"subnet6": "2001:db8:10::/64", "gateway6": "2001:db8:10::1"},
            "2001:db8:10::/64 is not a unique local IPv6 subnet (inside fc00::/7), so no host"
            " routes it into a lab (choose a subnet6 like fd00:10::/64, or leave gateway6 out)",
        ),
        (
            {"subnet6": "fd00::/40", "gateway6": "fd00::1"},
            "fd00::/40 is wider than a /48, so no host routes it into a lab",
        ),
    ],
)
def test_a_gateway6_outside_a_routable_subnet6_is_refused_naming_it(
    lan: dict[str, Any], message: str
) -> None:
    [error] = errors(with_lan(**lan))

    assert error.startswith("networks.lan.gateway6: ")
    assert message in error


def test_a_gateway6_needs_a_subnet6_and_no_node_may_hold_it() -> None:
    document = with_lan()
    del document["networks"]["lan"]["subnet6"]
    document["nodes"]["b"]["networks"]["lan"] = {}
    assert errors(document) == [
        "networks.lan.gateway6: a gateway6 needs a subnet6 to be in (add subnet6 here)"
    ]

    document = with_lan()
    document["nodes"]["b"]["networks"]["lan"]["ipv6"] = "fd00:10::1"
    assert errors(document) == ["nodes.b.networks.lan.ipv6: fd00:10::1 is the gateway6 of lan"]


def test_gateway6_is_a_bridge_option_of_labfile_2() -> None:
    document = with_lan()
    document["networks"]["dmz"] = {
        "driver": "macvlan",
        "parent": "lan",
        "subnet": "10.20.0.0/24",
        "subnet6": "fd00:20::/64",
        "gateway6": "fd00:20::1",
    }
    assert errors(document) == [
        "networks.dmz.gateway6: gateway6 is not an option of the macvlan driver"
    ]
    document = {**with_lan(), "labfile": 1}
    assert (
        "networks.lan.gateway6: gateway6 is a labfile 2 key; write labfile: 2 at the top of "
        "the file to use it" in errors(document)
    )


def test_an_overlays_gateway6_is_on_the_host_of_its_first_node_only() -> None:
    document = {
        "labfile": 2,
        "name": "spread6",
        "networks": {
            "wan": {
                "driver": "overlay",
                "subnet": "10.40.0.0/24",
                "subnet6": "fd00:40::/64",
                "gateway6": "fd00:40::1",
            }
        },
        "nodes": {
            "a": {"host": "one", "networks": {"wan": {}}},
            "b": {"host": "two", "networks": {"wan": {}}},
        },
    }
    plan = compile_plan(
        labfile.validate(document), deployment=4, underlay={"one": "192.0.2.1", "two": "192.0.2.2"}
    )
    by_host = {part.host: part.ops for part in plan.hosts}

    [guard_one] = [op for op in by_host["one"] if isinstance(op, GuardBridge)]
    [guard_two] = [op for op in by_host["two"] if isinstance(op, GuardBridge)]
    assert (guard_one.gateway6, guard_two.gateway6) == ("fd00:40::1", None)
    assert [op.subnet for op in by_host["one"] if isinstance(op, SetNat)] == [
        "10.40.0.0/24",
        "fd00:40::/64",
    ]
    assert not [op for op in by_host["two"] if isinstance(op, SetNat)]
    # b, on the other host, routes IPv6 through the gateway6 across the tunnel.
    assert AddRoute("lm4-n1", "::/0", "fd00:40::1") in by_host["two"]
