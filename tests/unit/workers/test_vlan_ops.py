"""The executor applies VLAN plans: a vlan_filtering bridge, access and trunk ports in
their VLANs before they come up, the bridge itself in a vlan network's VLAN, and the
802.1Q child in its node; a host without them is refused before anything is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from labplan import codec
from tests.unit.labplan.test_labfile_vlans import VLANS
from tests.unit.workers.fake_kernel import ALL_FACTS, FakeKernel
from tests.unit.workers.labs import plan_dict
from workers.capture.tasks import interfaces_in
from workers.errors import RefusedError
from workers.executor import Executor, Step
from workers.facts import Facts


def test_it_builds_the_bridge_ports_and_sub_interface(kernel: FakeKernel, tmp_path: Path) -> None:
    steps: list[Step] = []
    Executor(tmp_path, kernel.driver, facts=ALL_FACTS, progress=steps.append).apply(
        plan_dict(VLANS), "local"
    )
    bridge = kernel.links[(None, "lm7-b0")]
    assert bridge.vlan_filtering and bridge.tagged == {100}
    r1, sw = kernel.links[(None, "lm7-v1x0")], kernel.links[(None, "lm7-v2x0")]
    assert (r1.pvid, r1.tagged) == (10, set())
    assert (sw.pvid, sw.tagged) == (1, {10, 20})
    assert kernel.links[("lm7-n0", "eth0")].kind == "vlan 100"
    targets = {s.kind: s.target for s in steps if s.state == "done"}
    assert targets["set_port_vlans"] == "lm7-v2x0 pvid 1 tagged 10,20"
    assert targets["add_bridge_vlan"] == "lm7-b0 vid 100"
    assert targets["create_vlan"] == "lm7-n0:eth0"


def test_a_host_without_8021q_or_vlan_filtering_is_refused_first(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    facts = Facts(
        **{
            **ALL_FACTS.to_dict(),
            "link_kinds": ("veth", "bridge"),
            "bridge_vlan_filtering": False,
        }
    )
    with pytest.raises(RefusedError, match="this host lacks: bridge vlan filtering, vlan"):
        Executor(tmp_path, kernel.driver, facts=facts).apply(plan_dict(VLANS), "local")
    assert kernel.objects() == []


def test_a_capture_offers_the_vlan_child() -> None:
    plan = codec.plan_from_dict(plan_dict(VLANS))
    assert interfaces_in(plan.hosts[0].ops, "lm7-n0") == ("eth0",)


def test_destroy_leaves_nothing(kernel: FakeKernel, tmp_path: Path) -> None:
    executor = Executor(tmp_path, kernel.driver, facts=ALL_FACTS)
    executor.apply(plan_dict(VLANS), "local")
    executor.destroy("lm7")
    assert kernel.objects() == []
