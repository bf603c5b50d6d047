"""The plan compiler: ops per host, in dependency order, from a normalised lab."""

from __future__ import annotations

import pytest

from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.model import (
    Attachment,
    IoThrottle,
    Labfile,
    Limits,
    Namespaces,
    Network,
    Node,
    Route,
    Shaping,
)
from labplan.ops import (
    AddAddress,
    AddFdbEntry,
    AddRoute,
    AttachToBridge,
    CreateBridge,
    CreateCgroup,
    CreateIpvlan,
    CreateMacvlan,
    CreateNetns,
    CreateVethPair,
    CreateVxlan,
    GuardBridge,
    IsolateBridge,
    Op,
    SetCgroupLimit,
    SetLinkUp,
    SetNat,
    SetShaping,
    SpawnNode,
)

LAN = Network("lan", "bridge", subnet="10.10.0.0/24", gateway="10.10.0.1")


def node(name: str, *attachments: Attachment, **fields: object) -> Node:
    fields.setdefault("hostname", name)
    return Node(name, networks=attachments, **fields)  # type: ignore[arg-type]


def on_lan(ipv4: str, ifname: str = "eth0") -> Attachment:
    last = int(ipv4.rsplit(".", 1)[1])
    return Attachment("lan", ipv4, ifname, f"02:42:0a:0a:00:{last:02x}")


def two_nodes() -> Labfile:
    default = (Route("0.0.0.0/0", "10.10.0.1"),)
    return Labfile(
        "two-nodes",
        networks=(LAN,),
        nodes=(
            node("a", on_lan("10.10.0.2"), routes=default),
            node("b", on_lan("10.10.0.3"), routes=default, limits=Limits(memory=256 * 2**20)),
        ),
    )


def kinds(ops: tuple[Op, ...]) -> list[str]:
    return [op.kind for op in ops]


def test_two_nodes_on_a_bridge_compile_in_dependency_order() -> None:
    plan = compile_plan(two_nodes(), deployment=1)
    assert plan.lab == "two-nodes" and plan.deployment == "lm1"
    [host] = plan.hosts
    assert (host.host, host.deployment, host.group) == ("local", "lm1", 65537)
    ops = host.ops
    assert ops[:7] == (
        CreateNetns("lm1-n0"),
        CreateNetns("lm1-n1"),
        CreateCgroup("lm1"),
        CreateCgroup("lm1/n0"),
        CreateCgroup("lm1/n1"),
        SetCgroupLimit("lm1/n1", "memory.max", "268435456"),
        CreateBridge("lm1-b0", 1500, 65537, "labmgr:lm1"),
    )
    assert ops[7:11] == (
        GuardBridge("lm1-b0", "10.10.0.1"),  # before the bridge comes up
        SetLinkUp(None, "lm1-b0"),
        AddAddress(None, "lm1-b0", "10.10.0.1/24"),
        SetNat("lm1-b0", "10.10.0.0/24"),
    )
    assert ops[11:15] == (
        CreateVethPair(
            "lm1-v0x0", "lm1-n0", "eth0", "02:42:0a:0a:00:02", 1500, 65537, "labmgr:lm1"
        ),
        AttachToBridge("lm1-v0x0", "lm1-b0"),
        SetLinkUp(None, "lm1-v0x0"),
        SetLinkUp("lm1-n0", "eth0"),
    )
    assert ops[19:25] == (
        SetLinkUp("lm1-n0", "lo"),
        AddAddress("lm1-n0", "eth0", "10.10.0.2/24"),
        SetLinkUp("lm1-n1", "lo"),
        AddAddress("lm1-n1", "eth0", "10.10.0.3/24"),
        # Routes once every address is made: a via may be a link's far end.
        AddRoute("lm1-n0", "0.0.0.0/0", "10.10.0.1"),
        AddRoute("lm1-n1", "0.0.0.0/0", "10.10.0.1"),
    )
    assert kinds(ops[-2:]) == ["spawn_node", "spawn_node"]


def test_it_spawns_each_node_with_its_namespaces_environment_and_hosts_file() -> None:
    lab = Labfile(
        "env",
        networks=(LAN,),
        nodes=(
            node("web", on_lan("10.10.0.10"), environment={"Z": "1", "A": "2"}, command=("sh",)),
            node("db", on_lan("10.10.0.9"), hostname="database"),
        ),
    )
    spawns = [
        op for op in compile_plan(lab, deployment=3).hosts[0].ops if isinstance(op, SpawnNode)
    ]
    assert spawns[0] == SpawnNode(
        node="db",
        netns="lm3-n0",
        cgroup="lm3/n0",
        hostname="database",
        namespaces=("mnt", "uts", "ipc", "pid", "cgroup", "user"),
        privileged=False,
        rootfs="host",
        command=(),
        environment=(),
        workdir="/",
        hosts=(
            ("10.10.0.9", "database"),
            ("10.10.0.9", "db"),
            ("10.10.0.10", "web"),
            ("127.0.0.1", "localhost"),
        ),
    )
    assert spawns[1].environment == (("A", "2"), ("Z", "1"))
    assert spawns[1].command == ("sh",)


def test_a_privileged_node_unshares_only_the_namespaces_it_keeps() -> None:
    lab = Labfile(
        "priv",
        nodes=(node("r", privileged=True, namespaces=Namespaces(user=False, pid=False)),),
    )
    [spawn] = [
        op for op in compile_plan(lab, deployment=1).hosts[0].ops if isinstance(op, SpawnNode)
    ]
    assert spawn.namespaces == ("mnt", "uts", "ipc", "cgroup")
    assert spawn.privileged
    assert spawn.hosts == (("127.0.0.1", "localhost"), ("127.0.1.1", "r"))


def test_it_writes_every_cgroup_limit_in_cgroup_v2_terms() -> None:
    limits = Limits(
        cpus=0.5,
        cpu_weight=200,
        memory=2**30,
        memory_swap=0,
        pids=128,
        io_weight=50,
        io=(IoThrottle("8:0", rbps=10 * 2**20, wiops=1000), IoThrottle("8:16")),
    )
    ops = compile_plan(Labfile("l", nodes=(node("a", limits=limits),)), deployment=1).hosts[0].ops
    assert [(op.key, op.value) for op in ops if isinstance(op, SetCgroupLimit)] == [
        ("cpu.max", "50000 100000"),
        ("cpu.weight", "200"),
        ("memory.max", "1073741824"),
        ("memory.swap.max", "0"),
        ("pids.max", "128"),
        ("io.weight", "default 50"),
        ("io.max", "8:0 rbps=10485760 wiops=1000"),
    ]


def test_a_tiny_cpu_share_is_raised_to_the_kernel_minimum_quota() -> None:
    ops = compile_plan(Labfile("l", nodes=(node("a", limits=Limits(cpus=0.001)),)), deployment=1)
    assert SetCgroupLimit("lm1/n0", "cpu.max", "1000 100000") in ops.hosts[0].ops


def test_an_internal_bridge_is_isolated_instead_of_nated() -> None:
    lab = Labfile(
        "i",
        networks=(Network("lan", "bridge", subnet="10.10.0.0/24", gateway=None, internal=True),),
        nodes=(node("a", on_lan("10.10.0.2")),),
    )
    ops = compile_plan(lab, deployment=1).hosts[0].ops
    assert IsolateBridge("lm1-b0", "10.10.0.0/24") in ops
    assert not [op for op in ops if isinstance(op, SetNat)]
    assert AddAddress(None, "lm1-b0", "10.10.0.1/24") not in ops


def test_a_bridge_without_a_gateway_is_guarded_and_routes_nothing() -> None:
    lab = Labfile(
        "g",
        networks=(Network("lan", "bridge", subnet="10.10.0.0/24", gateway=None),),
        nodes=(node("a", on_lan("10.10.0.2")),),
    )
    ops = compile_plan(lab, deployment=1).hosts[0].ops
    assert GuardBridge("lm1-b0", None) in ops
    assert not [op for op in ops if isinstance(op, SetNat | AddAddress) and op.netns is None]


def test_an_overlays_bridge_holds_its_gateway_on_one_host_and_is_guarded_on_each() -> None:
    lab = Labfile(
        "ov",
        networks=(Network("ov", "overlay", subnet="10.40.0.0/24", gateway="10.40.0.1"),),
        nodes=(
            node("a", Attachment("ov", "10.40.0.10", "eth0"), host="ha"),
            node("b", Attachment("ov", "10.40.0.11", "eth0"), host="hb"),
        ),
    )
    plan = compile_plan(lab, deployment=1, underlay={"ha": "192.0.2.10", "hb": "192.0.2.11"})
    guards = {h.host: [op for op in h.ops if isinstance(op, GuardBridge)] for h in plan.hosts}
    assert guards == {
        "ha": [GuardBridge("lm1-b0", "10.40.0.1")],
        "hb": [GuardBridge("lm1-b0", None)],
    }


def test_macvlan_and_ipvlan_links_hang_off_the_parent_bridge_in_the_node_netns() -> None:
    lab = Labfile(
        "mv",
        networks=(
            Network("lan", "bridge", subnet="10.10.0.0/24", gateway="10.10.0.1"),
            Network("mv", "macvlan", subnet="10.20.0.0/24", parent="lan", mode="private"),
            Network("iv", "ipvlan", subnet="10.30.0.0/24", parent="host:dummy0", mode="l3"),
        ),
        nodes=(
            node(
                "a",
                Attachment("mv", "10.20.0.2", "eth0", "02:42:0a:14:00:02"),
                Attachment("iv", "10.30.0.2", "eth1"),
            ),
        ),
    )
    ops = compile_plan(lab, deployment=1).hosts[0].ops
    # networks sorted: iv=0, lan=1, mv=2
    assert CreateBridge("lm1-b1", 1500, 65537, "labmgr:lm1") in ops
    assert CreateMacvlan("lm1-b1", "lm1-n0", "eth0", "private", "02:42:0a:14:00:02", 1500) in ops
    assert CreateIpvlan("dummy0", "lm1-n0", "eth1", "l3", 1500) in ops
    assert AddAddress("lm1-n0", "eth1", "10.30.0.2/24") in ops


def test_a_host_network_node_gets_no_netns_and_no_routes() -> None:
    lab = Labfile(
        "h",
        networks=(Network("hostnet", "host"),),
        nodes=(node("a", Attachment("hostnet"), routes=(Route("0.0.0.0/0", "192.0.2.1"),)),),
    )
    ops = compile_plan(lab, deployment=1).hosts[0].ops
    assert kinds(ops) == ["create_cgroup", "create_cgroup", "spawn_node"]
    assert isinstance(ops[-1], SpawnNode) and ops[-1].netns is None


def test_a_none_network_node_gets_a_netns_with_only_loopback() -> None:
    lab = Labfile("n", networks=(Network("iso", "none"),), nodes=(node("a", Attachment("iso")),))
    ops = compile_plan(lab, deployment=1).hosts[0].ops
    assert kinds(ops) == [
        "create_netns",
        "create_cgroup",
        "create_cgroup",
        "set_link_up",
        "spawn_node",
    ]


def test_shaping_is_applied_to_each_attachment_of_a_shaped_network() -> None:
    shaped = Network(
        "lan",
        "bridge",
        subnet="10.10.0.0/24",
        gateway="10.10.0.1",
        shaping=Shaping(rate=10_000_000, delay=20_000),
    )
    lab = Labfile("s", networks=(shaped,), nodes=(node("a", on_lan("10.10.0.2")),))
    ops = compile_plan(lab, deployment=1).hosts[0].ops
    assert SetShaping("lm1-n0", "eth0", 10_000_000, 20_000, None, None) in ops


def overlay_lab(vni: int | None = None) -> Labfile:
    net = Network("wan", "overlay", subnet="10.40.0.0/24", gateway="10.40.0.1", vni=vni)

    def att(ip: str) -> Attachment:
        return Attachment("wan", ip, "eth0", None)

    return Labfile(
        "o",
        networks=(net,),
        nodes=(
            node("a", att("10.40.0.2"), host="node-a"),
            node("b", att("10.40.0.3"), host="node-b"),
            node("c", att("10.40.0.4"), host="node-b"),
        ),
    )


UNDERLAY = {"node-a": "192.0.2.1", "node-b": "192.0.2.2"}


def test_an_overlay_gets_a_bridge_and_vxlan_on_every_host_with_fdb_to_the_others() -> None:
    plan = compile_plan(overlay_lab(), deployment=1, underlay=UNDERLAY, vnis={"wan": 42})
    assert [h.host for h in plan.hosts] == ["node-a", "node-b"]
    a, b = (h.ops for h in plan.hosts)
    assert CreateVxlan("lm1-x0", 42, 4789, "192.0.2.1", "lm1-b0", 1500, 65537, "labmgr:lm1") in a
    assert AddFdbEntry("lm1-x0", "192.0.2.2") in a
    assert AddFdbEntry("lm1-x0", "192.0.2.1") in b
    assert [op for op in b if isinstance(op, AddFdbEntry)] == [AddFdbEntry("lm1-x0", "192.0.2.1")]
    # the gateway lives on the host of the first node by name, "a" on node-a
    assert AddAddress(None, "lm1-b0", "10.40.0.1/24") in a
    assert AddAddress(None, "lm1-b0", "10.40.0.1/24") not in b
    assert [op.netns for op in b if isinstance(op, CreateNetns)] == ["lm1-n1", "lm1-n2"]


def test_an_overlay_vni_comes_from_the_allocation_then_the_labfile_then_the_deployment() -> None:
    def vni(plan_vnis: dict[str, int] | None, lab_vni: int | None, deployment: int) -> int:
        plan = compile_plan(
            overlay_lab(lab_vni), deployment=deployment, underlay=UNDERLAY, vnis=plan_vnis
        )
        return next(op.vni for op in plan.hosts[0].ops if isinstance(op, CreateVxlan))

    assert vni({"wan": 7}, 4242, 1) == 7
    assert vni(None, 4242, 1) == 4242
    assert vni(None, None, 1) != vni(None, None, 2)
    assert 1 <= vni(None, None, 2**31) <= 2**24 - 1


def test_it_refuses_an_overlay_spanning_hosts_without_underlay_addresses() -> None:
    with pytest.raises(LabfileError) as caught:
        compile_plan(overlay_lab(), deployment=1, underlay={"node-a": "192.0.2.1"})
    assert [str(e) for e in caught.value.errors] == [
        "networks.wan: overlay network wan spans hosts node-a, node-b, but no underlay"
        " address is known for node-b"
    ]


def test_a_single_host_overlay_needs_no_underlay() -> None:
    plan = compile_plan(overlay_lab(), deployment=1, placement={"a": "x", "b": "x", "c": "x"})
    [vxlan] = [op for op in plan.hosts[0].ops if isinstance(op, CreateVxlan)]
    assert vxlan.local is None
    assert not [op for op in plan.hosts[0].ops if isinstance(op, AddFdbEntry)]


def test_placement_wins_over_the_labfile_host_and_the_default() -> None:
    plan = compile_plan(
        overlay_lab(),
        deployment=1,
        underlay={**UNDERLAY, "z": "192.0.2.9"},
        placement={"a": "z"},
        default_host="unused",
    )
    assert [h.host for h in plan.hosts] == ["node-b", "z"]


def test_it_refuses_a_bridge_spanning_two_hosts() -> None:
    with pytest.raises(LabfileError) as caught:
        compile_plan(two_nodes(), deployment=1, placement={"a": "h1", "b": "h2"})
    [error] = caught.value.errors
    assert error.path == "nodes.b.networks.lan"
    assert "bridge network lan is on host h1" in error.message
    assert "use an overlay network" in error.message


def test_it_refuses_a_macvlan_node_away_from_its_parent_bridge() -> None:
    lab = Labfile(
        "mv",
        networks=(
            LAN,
            Network("mv", "macvlan", subnet="10.20.0.0/24", parent="lan", mode="bridge"),
        ),
        nodes=(
            node("a", on_lan("10.10.0.2")),
            node("b", Attachment("mv", "10.20.0.2", "eth0", "02:42:0a:14:00:02")),
        ),
    )
    with pytest.raises(LabfileError) as caught:
        compile_plan(lab, deployment=1, placement={"b": "other"})
    [error] = caught.value.errors
    assert error.path == "nodes.b.networks.mv"
    assert "the parent of network mv is bridge lan, which is on host local" in error.message


def test_it_refuses_a_placement_of_an_unknown_node() -> None:
    with pytest.raises(LabfileError) as caught:
        compile_plan(two_nodes(), deployment=1, placement={"ghost": "h1"})
    assert str(caught.value) == "placement.ghost: there is no node ghost in lab two-nodes"


def test_an_unused_bridge_is_built_on_the_default_host() -> None:
    plan = compile_plan(Labfile("u", networks=(LAN,)), deployment=1, default_host="h")
    assert [h.host for h in plan.hosts] == ["h"]
    assert kinds(plan.hosts[0].ops) == [
        "create_bridge",
        "guard_bridge",
        "set_link_up",
        "add_address",
        "set_nat",
    ]


def test_the_same_lab_and_arguments_compile_to_equal_plans() -> None:
    first = compile_plan(overlay_lab(), deployment=9, underlay=UNDERLAY)
    assert first == compile_plan(overlay_lab(), deployment=9, underlay=dict(UNDERLAY))
