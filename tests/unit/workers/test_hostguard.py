"""What the agent keeps true of its host as a whole, against the in-memory kernel: routed
subnets clear of the host's own and of other labs, forwarding turned on only behind a
guard and back off with the last lab, VXLAN only from the peers of journaled overlays."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from labplan import codec, labfile
from labplan.compiler import compile_plan
from labplan.subnets import HostAddress, HostRoute
from tests.unit.workers.fake_kernel import ALL_FACTS, FakeKernel
from workers.driver import HostRules
from workers.errors import ApplyError, ConflictRefusedError
from workers.executor import Executor
from workers.hostguard import STATE_FILE, network_facts


def lab(subnet: str, **network: Any) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "lab",
        "networks": {"lan": {"driver": "bridge", "subnet": subnet, **network}},
        "nodes": {"a": {"networks": {"lan": {}}}},
    }


def plan(data: dict[str, Any], deployment: int, **kwargs: Any) -> dict[str, Any]:
    return codec.plan_to_dict(compile_plan(labfile.validate(data), deployment=deployment, **kwargs))


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel(
        host_routes=[
            HostRoute("0.0.0.0/0", "eth0", "192.0.2.1"),
            HostRoute("192.0.2.0/24", "eth0"),
            HostRoute("10.50.0.0/16", "eth1"),
        ],
        host_addresses=[HostAddress("192.0.2.2/24", "eth0"), HostAddress("10.50.0.1/16", "eth1")],
    )


@pytest.fixture
def executor(kernel: FakeKernel, tmp_path: Path) -> Executor:
    return Executor(tmp_path, kernel.driver, facts=ALL_FACTS)


def test_a_lab_routing_a_subnet_of_the_hosts_own_is_refused_before_anything_is_made(
    kernel: FakeKernel, executor: Executor
) -> None:
    with pytest.raises(ConflictRefusedError) as refused:
        executor.apply(plan(lab("10.50.3.0/24"), 7), "local")

    assert str(refused.value) == (
        "this host cannot route 10.50.3.0/24 overlaps the host's route 10.50.0.0/16 (dev eth1)"
    )
    assert kernel.objects() == []
    assert executor.journal.tokens() == []


def test_a_lab_routing_another_labs_subnet_is_refused_and_the_other_keeps_running(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan(lab("10.10.0.0/24"), 7), "local")
    before = kernel.objects()

    with pytest.raises(ConflictRefusedError, match=r"10.10.0.128/25 overlaps 10.10.0.0/24, "):
        executor.apply(plan(lab("10.10.0.128/25"), 8), "local")

    assert kernel.objects() == before
    assert executor.journal.tokens() == ["lm7"]


def test_a_redeploy_does_not_clash_with_the_subnets_it_already_routes(
    executor: Executor,
) -> None:
    executor.apply(plan(lab("10.10.0.0/24"), 7), "local")
    executor.apply(plan(lab("10.10.0.0/24", mtu=1400), 7), "local")

    assert executor.journal.tokens() == ["lm7"]


def test_labs_whose_hosts_route_nothing_may_share_a_subnet(executor: Executor) -> None:
    executor.apply(plan(lab("10.10.0.0/24", gateway="none"), 7), "local")
    executor.apply(plan(lab("10.10.0.0/24", gateway="none"), 8), "local")
    executor.apply(plan(lab("10.10.0.0/24"), 9), "local")  # the one that routes it

    assert executor.journal.tokens() == ["lm7", "lm8", "lm9"]


def test_forwarding_goes_on_behind_the_guard_and_off_with_the_last_nat_lab(
    kernel: FakeKernel, executor: Executor, tmp_path: Path
) -> None:
    executor.apply(plan(lab("10.10.0.0/24"), 7), "local")
    executor.apply(plan(lab("10.11.0.0/24"), 8), "local")

    assert kernel.ip_forward
    assert kernel.host_rules == HostRules(forward_guard=True)
    state = tmp_path / STATE_FILE
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600

    executor.destroy("lm7")
    assert kernel.ip_forward and kernel.host_rules.forward_guard
    executor.destroy("lm8")

    assert not kernel.ip_forward
    assert kernel.host_rules.empty and not state.exists()
    assert kernel.objects() == []


def test_forwarding_an_admin_turned_on_is_left_as_it_was(
    kernel: FakeKernel, executor: Executor, tmp_path: Path
) -> None:
    kernel.ip_forward = True
    executor.apply(plan(lab("10.10.0.0/24"), 7), "local")

    assert kernel.host_rules.empty  # no guard: the host was a router already
    executor.destroy("lm7")

    assert kernel.ip_forward and not (tmp_path / STATE_FILE).exists()


def test_a_sweep_turns_forwarding_back_off_when_no_lab_is_left(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan(lab("10.10.0.0/24"), 7), "local")
    executor.journal.remove("lm7")  # as if the journal were lost in a crash

    executor.sweep(live=[])

    assert not kernel.ip_forward and kernel.objects() == []


def test_a_failed_apply_leaves_forwarding_as_it_found_it(
    kernel: FakeKernel, executor: Executor
) -> None:
    kernel.fail_at = 12
    with pytest.raises(ApplyError):
        executor.apply(plan(lab("10.10.0.0/24"), 7), "local")

    assert not kernel.ip_forward and kernel.objects() == []


def overlay(peer_address: str) -> dict[str, Any]:
    """A lab on this host and a peer, deployment and subnet numbered after the peer."""
    last = int(peer_address.rsplit(".", 1)[1])
    return plan(
        {
            "labfile": 1,
            "name": "ov",
            "networks": {"ov": {"driver": "overlay", "subnet": f"10.4{last}.0.0/24"}},
            "nodes": {
                "a": {"host": "local", "networks": {"ov": {}}},
                "b": {"host": "far", "networks": {"ov": {}}},
            },
        },
        last,
        underlay={"local": "198.51.100.1", "far": peer_address},
    )


def test_vxlan_is_accepted_from_the_peers_of_journaled_overlays_only(
    kernel: FakeKernel, executor: Executor
) -> None:
    kernel.ip_forward = True
    executor.apply(overlay("198.51.100.7"), "local")
    assert kernel.host_rules == HostRules(vxlan_ports=(4789,), vxlan_peers=("198.51.100.7",))

    executor.apply(overlay("198.51.100.9"), "local")
    assert kernel.host_rules.vxlan_peers == ("198.51.100.7", "198.51.100.9")

    executor.destroy("lm7")
    assert kernel.host_rules.vxlan_peers == ("198.51.100.9",)
    executor.destroy("lm9")
    assert kernel.host_rules.empty


def test_a_plan_whose_bridge_comes_up_unguarded_is_refused(
    kernel: FakeKernel, executor: Executor
) -> None:
    data = plan(lab("10.10.0.0/24"), 7)
    ops = data["hosts"][0]["ops"]
    ops[:] = [op for op in ops if op["op"] != "guard_bridge"]

    with pytest.raises(ApplyError, match="bridge lm7-b0 has no guard_bridge op"):
        executor.apply(data, "local")
    assert kernel.objects() == []


def test_the_heartbeat_reports_the_hosts_routes_and_addresses(kernel: FakeKernel) -> None:
    assert network_facts(kernel.driver()) == {
        "routes": [
            {"dst": "0.0.0.0/0", "dev": "eth0", "via": "192.0.2.1"},
            {"dst": "192.0.2.0/24", "dev": "eth0", "via": ""},
            {"dst": "10.50.0.0/16", "dev": "eth1", "via": ""},
        ],
        "addresses": [
            {"address": "192.0.2.2/24", "dev": "eth0"},
            {"address": "10.50.0.1/16", "dev": "eth1"},
        ],
    }


def lab6(subnet6: str, subnet: str = "10.10.0.0/24", **network: Any) -> dict[str, Any]:
    """A dual-stack lab whose bridge routes IPv6 too (its gateway6, the first address)."""
    gateway6 = subnet6.split("/")[0] + "1"
    data = lab(subnet, subnet6=subnet6, gateway6=gateway6, **network)
    return {**data, "labfile": 2}


def test_ipv6_forwarding_goes_on_behind_its_guard_and_the_hosts_links_stay_hosts(
    kernel: FakeKernel, executor: Executor, tmp_path: Path
) -> None:
    executor.apply(plan(lab6("fd00:10::/64"), 7), "local")

    assert kernel.ip6_forward and kernel.ip_forward
    assert kernel.host_rules == HostRules(forward_guard=True, forward_guard6=True)
    # Turning `all` on turned every link's switch on; the host's own got theirs back.
    assert kernel.links_forwarding6 == {"eth0": False, "lo": False}

    executor.destroy("lm7")
    assert not kernel.ip6_forward and not kernel.ip_forward
    assert kernel.host_rules.empty and not (tmp_path / STATE_FILE).exists()


def test_ipv6_forwarding_an_admin_turned_on_is_left_as_it_was(
    kernel: FakeKernel, executor: Executor
) -> None:
    kernel.ip6_forward = True
    kernel.links_forwarding6 = {"eth0": True}
    executor.apply(plan(lab6("fd00:10::/64"), 7), "local")

    assert kernel.host_rules == HostRules(forward_guard=True)  # IPv4's only
    executor.destroy("lm7")

    assert kernel.ip6_forward and kernel.links_forwarding6 == {"eth0": True}


def test_a_lab_without_a_gateway6_leaves_ipv6_forwarding_alone(
    kernel: FakeKernel, executor: Executor
) -> None:
    executor.apply(plan({**lab("10.10.0.0/24", subnet6="fd00:10::/64"), "labfile": 2}, 7), "local")

    assert kernel.ip_forward and not kernel.ip6_forward
    assert kernel.host_rules == HostRules(forward_guard=True)


def test_a_lab_routing_an_ipv6_subnet_of_the_hosts_own_is_refused(
    kernel: FakeKernel, executor: Executor
) -> None:
    kernel.host_routes.append(HostRoute("fd00:50::/48", "eth1"))

    with pytest.raises(ConflictRefusedError) as refused:
        executor.apply(plan(lab6("fd00:50:0:1::/64"), 7), "local")

    assert str(refused.value) == (
        "this host cannot route fd00:50:0:1::/64 overlaps the host's route fd00:50::/48 (dev eth1)"
    )
    assert kernel.objects() == [] and not kernel.ip6_forward


def test_a_lab_routing_another_labs_subnet6_is_refused(executor: Executor) -> None:
    executor.apply(plan(lab6("fd00:10::/64"), 7), "local")

    with pytest.raises(ConflictRefusedError, match=r"fd00:10::/64 overlaps fd00:10::/64, "):
        executor.apply(plan(lab6("fd00:10::/64", "10.11.0.0/24"), 8), "local")

    assert executor.journal.tokens() == ["lm7"]


def test_a_forwarding_state_of_an_earlier_version_still_restores_ipv4(
    kernel: FakeKernel, executor: Executor, tmp_path: Path
) -> None:
    kernel.ip_forward = True  # turned on by an earlier agent, which wrote its state
    (tmp_path / STATE_FILE).write_text('{"ip_forward": 0}')
    executor.apply(plan(lab("10.10.0.0/24"), 7), "local")
    executor.destroy("lm7")

    assert not kernel.ip_forward and not (tmp_path / STATE_FILE).exists()
