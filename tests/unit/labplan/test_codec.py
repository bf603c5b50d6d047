"""The plan codec: JSON-ready both ways, and decoding refuses what an agent must not do."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from labplan.codec import guard_errors, plan_from_dict, plan_to_dict
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.model import (
    Attachment,
    IoThrottle,
    Labfile,
    Limits,
    Link,
    LinkEnd,
    Mount,
    Namespaces,
    Network,
    Node,
    Port,
    Route,
    Shaping,
    Volume,
)
from labplan.ops import OP_TYPES, Plan, SpawnNode


def every_kind_lab() -> Labfile:
    """A lab whose plan holds every kind of operation."""
    networks = (
        Network("hostnet", "host"),
        Network("inner", "bridge", subnet="10.11.0.0/24", gateway=None, internal=True),
        Network("iv", "ipvlan", subnet="10.30.0.0/24", parent="lan", mode="l3"),
        Network(
            "lan",
            "bridge",
            subnet="10.10.0.0/24",
            gateway="10.10.0.1",
            shaping=Shaping(rate=10_000_000, delay=20_000, jitter=5_000, loss=0.5),
        ),
        Network("mv", "macvlan", subnet="10.20.0.0/24", parent="host:dummy0", mode="bridge"),
        Network("wan", "overlay", subnet="10.40.0.0/24", gateway="10.40.0.1"),
        Network("trunk", "bridge", subnet="10.50.0.0/24", gateway=None, vlan_filtering=True),
        Network("v7", "vlan", subnet="10.60.0.0/24", parent="trunk", vlan_id=7),
    )
    limits = Limits(
        cpus=1.5,
        cpu_weight=100,
        memory=2**28,
        memory_swap=0,
        pids=64,
        io_weight=10,
        io=(IoThrottle("8:0", rbps=2**20, wiops=100),),
    )
    nodes = (
        Node(
            "a",
            "alpha",
            limits=limits,
            command=("sh", "-c", "echo $HOME; 'x'"),
            environment={"A": "1", "B": "x y"},
            workdir="/tmp",
            rootfs="/srv/rootfs",
            networks=(
                Attachment("lan", "10.10.0.2", "eth0", "02:42:0a:0a:00:02"),
                Attachment("mv", "10.20.0.2", "eth1", "02:42:0a:14:00:02"),
                Attachment("iv", "10.30.0.2", "eth2"),
                Attachment("inner", "10.11.0.2", "eth3", "02:42:0a:0b:00:02"),
                Attachment("wan", "10.40.0.2", "eth4", "02:42:0a:28:00:02"),
                Attachment("trunk", "10.50.0.2", "eth5", "02:42:0a:32:00:02", vlan=5, vlans=(7,)),
                Attachment("v7", "10.60.0.2", "eth6"),
            ),
            routes=(Route("0.0.0.0/0", "10.10.0.1"), Route("10.99.0.0/16", "10.40.0.1")),
            sysctls={"net.ipv4.ip_forward": "1"},
            mounts=(
                Mount("/var/lib/data", volume="data"),
                Mount("/srv/files", host="/srv/course", readonly=True),
            ),
        ),
        Node(
            "b",
            "b",
            host="far",
            privileged=True,
            namespaces=Namespaces(user=False, cgroup=False),
            networks=(Attachment("wan", "10.40.0.3", "eth0", "02:42:0a:28:00:03"),),
        ),
        Node(
            "h",
            "h",
            privileged=True,
            namespaces=Namespaces(user=False),
            networks=(Attachment("hostnet"),),
        ),
        Node(
            "i",
            "i",
            host="far",
            rootfs=None,
            command=None,
            workdir=None,
            image="docker.io/library/alpine:3.20",
            entrypoint=("/bin/sh", "-c"),
            user="app:app",
            exec=(("ip", "link", "set", "eth0", "mtu", "1400"),),
            networks=(Attachment("wan", "10.40.0.9", "eth0", "02:42:0a:28:00:09"),),
        ),
    )
    links = (
        Link(
            ends=(
                LinkEnd(
                    "b", "p0", "10.0.12.1/30", "fd00:12::1/64", Shaping(delay=1000, duplicate=1.0)
                ),
                LinkEnd("i", "p0", "10.0.12.2/30"),
            )
        ),
    )
    ports = (
        Port(1, "dummy", LinkEnd("a", "lo1", "10.255.0.1/32")),
        Port(
            2,
            "host",
            LinkEnd("a", "eth9", "10.0.99.2/30"),
            host_ifname="lab-a",
            host_ipv4="10.0.99.1/30",
        ),
        Port(3, "vxlan", LinkEnd("a", "vx0"), remote="198.51.100.7", vni=9, parent="dummy0"),
        Port(4, "network", LinkEnd("a", "eth8", "10.10.0.50/24"), network="lan"),
    )
    volumes = (Volume("data", 2**26),)
    return Labfile(
        "every-kind", networks=networks, nodes=nodes, links=links, volumes=volumes, ports=ports
    )


def every_kind_plan() -> Plan:
    return compile_plan(
        every_kind_lab(), deployment=77, underlay={"local": "192.0.2.1", "far": "2001:db8::2"}
    )


def test_the_test_plan_holds_every_kind_of_operation() -> None:
    kinds = {op.kind for host in every_kind_plan().hosts for op in host.ops}
    assert kinds == {t.kind for t in OP_TYPES}


def test_a_plan_survives_a_round_trip_through_json() -> None:
    plan = every_kind_plan()
    data = json.loads(json.dumps(plan_to_dict(plan)))
    assert plan_from_dict(data) == plan


def test_ops_are_tagged_with_their_kind() -> None:
    data = plan_to_dict(every_kind_plan())
    assert data["version"] == 1 and data["deployment"] == "lm25"
    assert data["hosts"][0]["ops"][:2] == [
        {"op": "pull_image", "ref": "docker.io/library/alpine:3.20", "digest": None},
        {"op": "create_netns", "netns": "lm25-n1"},
    ]


def refusal(change: Any) -> list[str]:
    """The errors decoding reports for the test plan after `change(data)`."""
    data = plan_to_dict(every_kind_plan())
    change(data)
    with pytest.raises(LabfileError) as caught:
        plan_from_dict(data)
    return [str(e) for e in caught.value.errors]


def op_index(data: dict[str, Any], kind: str, host: int = 1) -> int:
    return next(i for i, op in enumerate(data["hosts"][host]["ops"]) if op["op"] == kind)


def set_field(kind: str, field: str, value: object, host: int = 1) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["hosts"][host]["ops"][op_index(data, kind, host)][field] = value

    return change


def path(kind: str, field: str, host: int = 1) -> str:
    data = plan_to_dict(every_kind_plan())
    name = data["hosts"][host]["host"]
    return f"hosts.{name}.ops.{op_index(data, kind, host)}.{field}"


def test_it_refuses_an_unknown_operation() -> None:
    errors = refusal(lambda d: d["hosts"][1]["ops"].append({"op": "format_disk"}))
    assert errors == [
        f"hosts.local.ops.{len(plan_to_dict(every_kind_plan())['hosts'][1]['ops'])}"
        ".op: 'format_disk' is not a known operation"
    ]


def test_it_refuses_unknown_and_missing_keys() -> None:
    def change(data: dict[str, Any]) -> None:
        op = data["hosts"][1]["ops"][0]
        op["shell"] = "rm -rf /"
        del op["netns"]

    assert refusal(change) == [
        "hosts.local.ops.0.shell: unknown key",
        "hosts.local.ops.0.netns: is missing",
    ]
    assert refusal(lambda d: d.update(extra=1)) == ["extra: unknown key"]


@pytest.mark.parametrize(
    ("kind", "field", "value", "message"),
    [
        ("create_netns", "netns", "lm1-n0", "'lm1-n0' is not a netns name of deployment lm25"),
        ("create_netns", "netns", "lm25-n0/../x", "is not a netns name"),
        ("create_bridge", "name", "eth0", "'eth0' is not a bridge name of deployment lm25"),
        ("create_bridge", "name", "lm25-b0000000000", "is not a bridge name"),
        ("create_veth_pair", "name", "lm25-b0", "is not a veth name"),
        ("create_veth_pair", "peer_ifname", "a/b", "is not an interface name"),
        ("create_veth_pair", "peer_ifname", "x" * 16, "is not an interface name"),
        ("create_veth_pair", "peer_mac", "01:00:5e:00:00:01", "is a multicast MAC address"),
        ("create_veth_pair", "mtu", 67, "67 is not a whole number in 68..65535"),
        ("create_veth_pair", "mtu", True, "True is not a whole number in 68..65535"),
        ("create_veth_pair", "group", 1, "1 is not 65613, the deployment's link group"),
        ("create_veth_pair", "alias", "labmgr:lm1", "is not 'labmgr:lm25'"),
        ("create_macvlan", "parent", "lm1-b0", "'lm1-b0' is not a bridge of deployment lm25"),
        ("create_macvlan", "parent", "lm25-v0x0", "is not a bridge name of deployment lm25"),
        ("create_macvlan", "mode", "l2", "'l2' is not one of bridge, private, vepa, passthru"),
        ("create_ipvlan", "mode", "bridge", "'bridge' is not one of l2, l3, l3s"),
        ("create_vxlan", "vni", 2**24, "is not a whole number in 1..16777215"),
        ("create_vxlan", "local", "192.0.2.300", "'192.0.2.300' is not an IP address"),
        ("add_fdb_entry", "dst", "far", "'far' is not an IP address"),
        ("add_address", "address", "10.10.0.1", "is not an IP address with prefix"),
        ("add_address", "address", "fd00:0::1/64", "is not written canonically as address/prefix"),
        ("add_address", "address", "10.10.0.1/33", "is not an IP address with prefix"),
        ("add_route", "dst", "10.10.0.1/24", "'10.10.0.1/24' is not an IP network"),
        ("add_route", "via", "2001:db8::1", "2001:db8::1 is not of the family of 0.0.0.0/0"),
        ("add_route", "via", "10.10.0.1.5", "is not an IP address"),
        ("set_nat", "subnet", "010.10.0.0/24", "is not an IP network"),
        # A volume is the plan's by name; a mount goes on a path of the node's that takes one.
        ("create_volume", "volume", "../x", "'../x' is not a volume name"),
        ("create_volume", "size", 2**40, "is not a whole number in 1048576..4294967296"),
        ("spawn_node", "mounts", [["volume", "a/b", "/x", "rw"]], "'a/b' is not a volume name"),
        ("spawn_node", "mounts", [["host", "srv", "/x", "ro"]], "is not an absolute path"),
        ("spawn_node", "mounts", [["host", "/srv", "/proc/x", "ro"]], "in the node's /proc"),
        ("spawn_node", "mounts", [["host", "/srv", "/a/../../x", "ro"]], "without '..'"),
        ("spawn_node", "mounts", [["host", "/srv", "/x", "rx"]], "'rx' is not ro or rw"),
        ("spawn_node", "mounts", [["device", "/dev/sda", "/x", "rw"]], "is not volume or host"),
        # A node's sysctls are its own network namespace's, one line each.
        ("set_sysctl", "key", "kernel.panic", "'kernel.panic' is not a net.* sysctl"),
        ("set_sysctl", "key", "net.ipv4/../../kernel", "is not a net.* sysctl"),
        ("set_sysctl", "value", "1\nkernel.panic=1", "is not a sysctl value"),
        ("set_sysctl", "netns", "lm1-n0", "is not a netns name of deployment lm25"),
        # What the host holds or routes for a lab never covers what is not the lab's.
        ("add_address", "address", "127.0.0.2/8", "overlaps loopback 127.0.0.0/8"),
        ("add_address", "address", "169.254.169.1/16", "overlaps link-local 169.254.0.0/16"),
        ("set_nat", "subnet", "0.0.0.0/0", "0.0.0.0/0 is wider than a /8"),
        ("set_nat", "subnet", "128.0.0.0/2", "128.0.0.0/2 is wider than a /8"),
        ("set_nat", "subnet", "224.0.0.0/24", "overlaps multicast 224.0.0.0/4"),
        ("isolate_bridge", "subnet", "0.0.0.0/8", "overlaps 'this network' 0.0.0.0/8"),
        ("guard_bridge", "gateway", "10.10.0.1/24", "'10.10.0.1/24' is not an IP address"),
        ("guard_bridge", "gateway", "2001:db8::1", "is not an IPv4 address"),
        # ... and in IPv6 it routes nothing but unique local subnets.
        ("add_address", "address", "2001:db8::1/64", "is not a unique local IPv6 subnet"),
        ("add_address", "address", "fd00::1/32", "fd00::/32 is wider than a /48"),
        ("set_nat", "subnet", "::/0", "::/0 is not a unique local IPv6 subnet"),
        ("guard_bridge", "gateway6", "10.10.0.1", "is not an IPv6 address"),
        ("guard_bridge", "gateway6", "2001:db8::1", "is not a unique local IPv6 subnet"),
        ("set_shaping", "rate", 0, "0 is not a whole number in 1..1000000000000"),
        ("set_shaping", "loss", 101.0, "101.0 is not a percentage in 0..100"),
        ("set_shaping", "delay", "20ms", "'20ms' is not a whole number in 0..60000000"),
        ("create_cgroup", "cgroup", "/lm25", "is not a relative cgroup path under lm25"),
        ("create_cgroup", "cgroup", "lm25/../../x", "is not a relative cgroup path under lm25"),
        ("create_cgroup", "cgroup", "lm2/n0", "is not a relative cgroup path under lm25"),
        ("set_cgroup_limit", "key", "cgroup.procs", "'cgroup.procs' is not one of cpu.max"),
        ("spawn_node", "rootfs", "srv/rootfs", "is not an absolute path without '..'"),
        ("spawn_node", "rootfs", "/srv/../etc", "is not an absolute path without '..'"),
        ("spawn_node", "workdir", "/tmp/\0", "is not text of at most 4096 bytes without NUL"),
        ("spawn_node", "command", "sh -c x", "is not a list"),
        ("spawn_node", "command", ["sh", 1], "1 is not a string"),
        ("spawn_node", "environment", [["B", "1"], ["A", "2"]], "must be sorted by name"),
        ("spawn_node", "environment", [["A B", "1"]], "'A B' is not an environment variable"),
        ("spawn_node", "hosts", [["10.0.0.1", "a b"]], "'a b' is not a host name"),
        ("spawn_node", "namespaces", ["net"], "is not a list of distinct kinds of mnt"),
        ("spawn_node", "privileged", "yes", "'yes' is not true or false"),
        ("spawn_node", "hostname", "-x", "'-x' is not a hostname"),
    ],
)
def test_it_refuses_a_field_an_agent_must_not_act_on(
    kind: str, field: str, value: object, message: str
) -> None:
    [error] = refusal(set_field(kind, field, value))
    assert error.startswith(f"{path(kind, field)}: ")
    assert message in error


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("memory.max", "256M"),
        ("memory.max", "-1"),
        ("cpu.max", "50000"),
        ("cpu.max", "100 100000"),
        ("cpu.weight", "0"),
        ("cpu.weight", "10001"),
        ("io.weight", "50"),
        ("pids.max", "0"),
        ("io.max", "8:0 rbps=1 rbps=2"),
        ("io.max", "8:0\nrbps=1"),
        ("io.max", "8:0"),
    ],
)
def test_it_refuses_a_cgroup_value_that_does_not_match_its_key(key: str, value: str) -> None:
    def change(data: dict[str, Any]) -> None:
        op = data["hosts"][1]["ops"][op_index(data, "set_cgroup_limit")]
        op.update(key=key, value=value)

    [error] = refusal(change)
    assert error.startswith(f"{path('set_cgroup_limit', 'value')}: ")
    assert f"is not a valid {key} value" in error or "is not a weight" in error or "twice" in error


def test_it_refuses_a_host_link_op_on_a_link_it_does_not_own() -> None:
    def change(data: dict[str, Any]) -> None:
        data["hosts"][1]["ops"].append({"op": "set_link_up", "netns": None, "ifname": "eth0"})

    [error] = refusal(change)
    assert error.endswith(".ifname: 'eth0' is not a host link of deployment lm25")


def test_a_bridge_without_its_guard_is_not_applied() -> None:
    data = plan_to_dict(every_kind_plan())
    ops = data["hosts"][1]["ops"]
    guard = op_index(data, "guard_bridge")
    bridge = ops[guard]["bridge"]
    up = next(
        i
        for i, op in enumerate(ops)
        if op == {"op": "set_link_up", "netns": None, "ifname": bridge}
    )
    del ops[guard]

    assert [str(e) for e in guard_errors(plan_from_dict(data))] == [
        f"hosts.local.ops.{up - 1}: bridge {bridge} has no guard_bridge op before it comes up:"
        " the host would be open to its nodes"
    ]


def test_a_guard_after_its_bridge_came_up_is_too_late() -> None:
    data = plan_to_dict(every_kind_plan())
    ops = data["hosts"][1]["ops"]
    ops.append(ops.pop(op_index(data, "guard_bridge")))

    [error] = guard_errors(plan_from_dict(data))
    assert "has no guard_bridge op before it comes up" in error.message
    assert guard_errors(every_kind_plan()) == []


def test_it_refuses_an_unprivileged_node_without_every_namespace() -> None:
    def change(data: dict[str, Any]) -> None:
        spawn = data["hosts"][1]["ops"][op_index(data, "spawn_node")]
        spawn.update(privileged=False, namespaces=["mnt", "uts"])

    [error] = refusal(change)
    assert error.endswith(".namespaces: only a privileged node may turn a namespace off")


def test_it_refuses_a_shaping_op_that_shapes_nothing() -> None:
    def change(data: dict[str, Any]) -> None:
        op = data["hosts"][1]["ops"][op_index(data, "set_shaping")]
        op.update(rate=None, delay=None, jitter=None, loss=None)

    assert refusal(change)[0].endswith(
        "a shaping op sets at least one of rate, delay, jitter, loss, duplicate, corrupt, reorder"
    )


def test_it_refuses_hosts_that_disagree_with_the_plan() -> None:
    def change(data: dict[str, Any]) -> None:
        data["hosts"][0]["deployment"] = "lm1"
        data["hosts"][1]["group"] = 65537

    assert refusal(change) == [
        "hosts.far.deployment: must be the plan's lm25",
        "hosts.local.group: must be 65613, the deployment's group",
    ]


def test_it_refuses_a_malformed_deployment_token_or_version() -> None:
    assert refusal(lambda d: d.update(deployment="lm0")) == [
        "deployment: 'lm0' is not a deployment token like 'lm1'"
    ]
    assert refusal(lambda d: d.update(version=2)) == ["version: must be 1"]
    with pytest.raises(LabfileError, match="must be a mapping"):
        plan_from_dict([])


def test_it_reports_every_problem_not_just_the_first() -> None:
    def change(data: dict[str, Any]) -> None:
        data["hosts"][1]["ops"][0]["netns"] = "eth0"
        data["hosts"][0]["ops"][0]["netns"] = "eth1"

    errors = refusal(change)
    assert [e.split(":")[0] for e in errors] == ["hosts.far.ops.0.netns", "hosts.local.ops.0.netns"]


def test_it_refuses_duplicate_or_unsorted_hosts() -> None:
    def change(data: dict[str, Any]) -> None:
        data["hosts"].append(copy.deepcopy(data["hosts"][0]))

    assert refusal(change) == ["hosts.2.host: 'far' is not a new host name"]
    assert refusal(lambda d: d["hosts"].reverse()) == ["hosts: must be sorted by host"]


def many_nodes_plan(count: int) -> Plan:
    lan = Network("lan", "bridge", subnet="10.0.0.0/16", gateway="10.0.0.1")
    nodes = tuple(
        Node(
            f"n{i:04}",
            f"n{i:04}",
            networks=(Attachment("lan", f"10.0.{i // 200}.{i % 200 + 2}", "eth0"),),
        )
        for i in range(count)
    )
    return compile_plan(Labfile("many", networks=(lan,), nodes=nodes), deployment=1)


def test_the_lines_every_node_shares_travel_once_per_host() -> None:
    data = plan_to_dict(many_nodes_plan(100))
    [host] = data["hosts"]
    assert len(host["etc_hosts"]) == 101  # every node, and localhost
    spawn = host["ops"][-1]
    assert spawn["hosts"] == {"shared": True, "own": []}
    size = {n: len(json.dumps(plan_to_dict(many_nodes_plan(n)))) for n in (100, 400)}
    assert size[400] < 4.5 * size[100]  # linear, where a full list per node is quadratic


def test_nodes_with_the_same_lines_share_them_from_compile_to_decode() -> None:
    """A lab of N nodes holds one /etc/hosts of N lines, not N of them: compiling,
    encoding and decoding grow with the lab, not with its square."""
    plan = many_nodes_plan(50)
    for decoded in (plan, plan_from_dict(plan_to_dict(plan))):
        spawns = [op for op in decoded.hosts[0].ops if isinstance(op, SpawnNode)]
        assert len({id(op.hosts) for op in spawns}) == 1
        assert spawns[0].hosts[0] == ("10.0.0.2", "n0000")
        assert spawns[0].hosts[-1] == ("127.0.0.1", "localhost")
        assert len(spawns[0].hosts) == 51


def test_a_node_with_its_own_lines_keeps_them_in_place() -> None:
    plan = every_kind_plan()
    data = plan_to_dict(plan)
    spawns = [op for op in data["hosts"][1]["ops"] if op["op"] == "spawn_node"]
    assert [op["hosts"]["own"] for op in spawns] == [
        [[1, "10.10.0.2", "alpha"]],
        [[4, "127.0.1.1", "h"]],  # after the lab's four nodes' lines
    ]
    assert plan_from_dict(data) == plan


def test_lines_that_do_not_extend_the_shared_ones_travel_in_full() -> None:
    plan = many_nodes_plan(3)
    [host] = plan.hosts
    first = next(op for op in host.ops if isinstance(op, SpawnNode))
    reordered = replace(first, hosts=tuple(reversed(first.hosts)))
    ops = tuple(reordered if op is first else op for op in host.ops)
    odd = replace(plan, hosts=(replace(host, ops=ops),))
    data = plan_to_dict(odd)
    kinds = [type(op["hosts"]) for op in data["hosts"][0]["ops"] if op["op"] == "spawn_node"]
    assert kinds == [dict, list, list]  # the shared lines follow the first node's order
    assert plan_from_dict(data) == odd


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ({"shared": True, "own": [[99, "10.0.0.9", "x"]]}, "is not at a position in 0..4"),
        ({"shared": True, "own": [["0", "10.0.0.9", "x"]]}, "is not at a position"),
        ({"shared": True, "own": [[[0], "10.0.0.9", "x"]]}, "is not at a position"),
        ({"shared": True, "own": [[-1, "10.0.0.9", "x"]]}, "is not at a position"),
        ({"shared": True, "own": [[0, "10.0.0.9"]]}, "is not a list of [position, address, name]"),
        ({"shared": True, "own": [[0, "10.0.0.9", "a b"]]}, "'a b' is not a host name"),
        ({"shared": 1, "own": []}, "is not a list of lines or {shared: true, own: [...]}"),
        ({"own": []}, "is not a list of lines or {shared: true, own: [...]}"),
    ],
)
def test_it_refuses_malformed_own_lines(hosts: object, message: str) -> None:
    data = plan_to_dict(many_nodes_plan(3))
    data["hosts"][0]["ops"][-1]["hosts"] = hosts
    with pytest.raises(LabfileError) as caught:
        plan_from_dict(data)
    [error] = caught.value.errors
    assert error.path == f"hosts.local.ops.{len(data['hosts'][0]['ops']) - 1}.hosts"
    assert message in error.message


def test_it_refuses_own_lines_without_shared_ones() -> None:
    data = plan_to_dict(many_nodes_plan(3))
    del data["hosts"][0]["etc_hosts"]
    with pytest.raises(LabfileError) as caught:
        plan_from_dict(data)
    assert {e.message for e in caught.value.errors} == {
        "refers to shared lines, but the host plan has no etc_hosts"
    }


def test_it_checks_the_shared_lines() -> None:
    data = plan_to_dict(many_nodes_plan(3))
    data["hosts"][0]["etc_hosts"][0] = ["10.0.0.300", "x"]
    with pytest.raises(LabfileError) as caught:
        plan_from_dict(data)
    assert str(caught.value.errors[0]) == (
        "hosts.local.etc_hosts: '10.0.0.300' is not an IP address"
    )
