"""The shell rendering of a plan: commands a student can read, user text only as data."""

from __future__ import annotations

import shlex

from labplan.ops import (
    AddFdbEntry,
    AddRoute,
    CreateBridge,
    CreateCgroup,
    CreateMacvlan,
    CreateNetns,
    CreateVethPair,
    CreateVxlan,
    GuardBridge,
    HostPlan,
    IsolateBridge,
    Op,
    Plan,
    SetCgroupLimit,
    SetLinkUp,
    SetNat,
    SetShaping,
    SpawnNode,
)
from labplan.render import render_host, render_op, render_plan, render_teardown


def spawn(**fields: object) -> SpawnNode:
    values: dict[str, object] = {
        "node": "web",
        "netns": "lm1-n0",
        "cgroup": "lm1/n0",
        "hostname": "web",
        "namespaces": ("mnt", "uts", "ipc", "pid", "cgroup", "user"),
        "privileged": False,
        "rootfs": "host",
        "command": (),
        "environment": (),
        "workdir": "/",
        "hosts": (("10.10.0.10", "web"), ("127.0.0.1", "localhost")),
    }
    values.update(fields)
    return SpawnNode(**values)  # type: ignore[arg-type]


def test_links_render_as_ip_commands_that_create_the_veth_peer_inside_the_netns() -> None:
    veth = CreateVethPair(
        "lm1-v0x0", "lm1-n0", "eth0", "02:42:0a:0a:00:0a", 1500, 65537, "labmgr:lm1"
    )
    assert render_op(veth) == [
        "ip link add lm1-v0x0 mtu 1500 type veth peer name eth0 netns lm1-n0 mtu 1500"
        " address 02:42:0a:0a:00:0a",
        "ip link set lm1-v0x0 group 65537 alias labmgr:lm1",
    ]
    assert render_op(CreateBridge("lm1-b0", 9000, 65537, "labmgr:lm1")) == [
        "ip link add lm1-b0 type bridge",
        "ip link set lm1-b0 group 65537 alias labmgr:lm1 mtu 9000",
    ]
    assert render_op(SetLinkUp("lm1-n0", "lo")) == ["ip -n lm1-n0 link set lo up"]
    assert render_op(AddRoute("lm1-n0", "0.0.0.0/0", "10.10.0.1")) == [
        "ip -n lm1-n0 route add default via 10.10.0.1"
    ]
    assert render_op(AddRoute("lm1-n0", "10.0.0.0/8", "10.10.0.1")) == [
        "ip -n lm1-n0 route add 10.0.0.0/8 via 10.10.0.1"
    ]
    assert render_op(CreateMacvlan("lm1-b0", "lm1-n1", "eth1", "private", None, 1500)) == [
        "ip link add link lm1-b0 name eth1 netns lm1-n1 mtu 1500 type macvlan mode private"
    ]


def test_a_vxlan_renders_with_its_vni_port_underlay_and_flood_entry() -> None:
    vxlan = CreateVxlan("lm1-x0", 42, 4789, "192.0.2.1", "lm1-b0", 1500, 65537, "labmgr:lm1")
    assert render_op(vxlan) == [
        "ip link add lm1-x0 mtu 1500 type vxlan id 42 dstport 4789 local 192.0.2.1",
        "ip link set lm1-x0 group 65537 alias labmgr:lm1 master lm1-b0",
    ]
    assert render_op(AddFdbEntry("lm1-x0", "192.0.2.2")) == [
        "bridge fdb append 00:00:00:00:00:00 dev lm1-x0 dst 192.0.2.2"
    ]


def test_cgroup_limits_are_file_writes_under_the_labmgr_parent() -> None:
    assert render_op(SetCgroupLimit("lm1/n0", "memory.max", "268435456")) == [
        "echo 268435456 > /sys/fs/cgroup/labmgr/lm1/n0/memory.max"
    ]
    assert render_op(SetCgroupLimit("lm1/n0", "cpu.max", "50000 100000")) == [
        "echo '50000 100000' > /sys/fs/cgroup/labmgr/lm1/n0/cpu.max"
    ]
    assert render_op(CreateCgroup("lm1")) == [
        "mkdir /sys/fs/cgroup/labmgr/lm1",
        "echo '+cpu +memory +pids +io' > /sys/fs/cgroup/labmgr/lm1/cgroup.subtree_control",
    ]


def test_nat_renders_as_masquerade_and_a_bridge_never_forwards_into_another_lab_link() -> None:
    assert render_op(SetNat("lm1-b0", "10.10.0.0/24")) == [
        "sysctl -qw net.ipv4.ip_forward=1",
        "iptables -t nat -A POSTROUTING -s 10.10.0.0/24 ! -o lm1-b0 -j MASQUERADE",
        "iptables -I FORWARD -i lm1-b0 -o lm+ -j DROP",
        "iptables -I FORWARD -i lm1-b0 ! -o lm1-b0 -d 169.254.0.0/16 -j DROP",
        "iptables -I FORWARD -o lm1-b0 ! -i lm1-b0 -m conntrack ! --ctstate ESTABLISHED,RELATED"
        " -j DROP",
        "iptables -I FORWARD -i lm1-b0 -o lm1-b0 -j ACCEPT",
        "# and: iptables -I FORWARD -i lm1-b0 -d NETWORK -j DROP, for each network the host is on",
    ]
    assert render_op(IsolateBridge("lm1-b0", "10.10.0.0/24")) == [
        "iptables -I FORWARD -i lm1-b0 ! -o lm1-b0 -j DROP",
        "iptables -I FORWARD -o lm1-b0 ! -i lm1-b0 -j DROP",
    ]


def test_a_guarded_bridge_lets_the_host_answer_only_pings_to_its_gateway() -> None:
    assert render_op(GuardBridge("lm1-b0", "10.10.0.1")) == [
        "iptables -I INPUT -i lm1-b0 -j DROP",
        "iptables -I INPUT -i lm1-b0 -d 10.10.0.1 -p icmp --icmp-type echo-request -j ACCEPT",
        "iptables -I INPUT -i lm1-b0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    ]
    assert render_op(GuardBridge("lm1-b0", None))[-2:] == [
        "iptables -I FORWARD -i lm1-b0 ! -o lm1-b0 -j DROP",
        "iptables -I FORWARD -o lm1-b0 ! -i lm1-b0 -j DROP",
    ]


def test_shaping_uses_netem_for_delay_and_loss_and_tbf_for_the_rate() -> None:
    assert render_op(SetShaping("lm1-n0", "eth0", 10_000_000, 20_000, 5_000, 0.5)) == [
        "tc -n lm1-n0 qdisc add dev eth0 root handle 1: netem delay 20ms 5ms loss 0.5%",
        "tc -n lm1-n0 qdisc add dev eth0 parent 1: handle 2: tbf rate 10mbit burst 12500"
        " latency 50ms",
    ]
    assert render_op(SetShaping("lm1-n0", "eth0", 1_000_000, None, None, None)) == [
        "tc -n lm1-n0 qdisc add dev eth0 root handle 2: tbf rate 1mbit burst 1600 latency 50ms"
    ]


def test_a_node_starts_in_its_cgroup_netns_and_fresh_namespaces() -> None:
    lines = render_op(spawn(command=("python3", "-m", "http.server", "80")))
    assert lines[:2] == [
        "mkdir -p /run/labmgr/lm1/n0",
        "printf '%s\\n' '10.10.0.10 web' '127.0.0.1 localhost' > /run/labmgr/lm1/n0/hosts",
    ]
    assert lines[2] == (
        "(echo $BASHPID > /sys/fs/cgroup/labmgr/lm1/n0/cgroup.procs && exec ip netns exec lm1-n0"
        " unshare --mount --uts --ipc --pid --cgroup --user --map-root-user --fork --mount-proc"
        " --wd=/ -- sh -c 'hostname web && mount --bind /run/labmgr/lm1/n0/hosts /etc/hosts"
        ' && exec "$@"\' init python3 -m http.server 80) &'
    )


def test_a_privileged_host_network_node_keeps_the_namespaces_it_turned_off() -> None:
    [*_, line] = render_op(spawn(netns=None, namespaces=("uts", "ipc"), privileged=True))
    assert "ip netns exec" not in line
    assert "unshare --uts --ipc --wd=/ -- sh -c 'hostname web && exec \"$@\"'" in line
    assert "--user" not in line and "--mount" not in line


def test_user_text_reaches_the_shell_only_as_quoted_data() -> None:
    hostile = "$(touch /tmp/pwned); `id` 'x"
    [*_, line] = render_op(
        spawn(command=("echo", hostile), environment=(("MODE", hostile),), workdir="/srv/a b")
    )
    words = shlex.split(line[1:-3])  # drop the subshell's "(" and ") &"
    assert ["echo", hostile] == words[-2:]
    assert f"MODE={hostile}" in words
    assert "--wd=/srv/a b" in words


def plan_of(*ops: Op) -> HostPlan:
    return HostPlan("local", "lm1", 65537, ops)


def test_a_host_block_has_a_header_and_a_comment_per_phase() -> None:
    text = render_host(plan_of(CreateNetns("lm1-n0"), SetLinkUp("lm1-n0", "lo"), spawn()))
    assert text.splitlines()[:4] == [
        "# host: local",
        "# network namespaces, one per node",
        "ip netns add lm1-n0",
        "# addresses, shaping and routes inside the nodes",
    ]
    assert "# processes: each node's init in its own namespaces" in text


def test_a_plan_renders_every_host_in_order() -> None:
    plan = Plan(
        "lab",
        "lm1",
        (
            plan_of(CreateNetns("lm1-n0")),
            HostPlan("remote", "lm1", 65537, (CreateNetns("lm1-n1"),)),
        ),
    )
    text = render_plan(plan)
    assert text.startswith("# lab lab, deployment lm1\n")
    assert text.index("# host: local") < text.index("# host: remote")


def test_teardown_kills_the_nodes_deletes_the_link_group_then_namespaces_and_cgroups() -> None:
    host = plan_of(
        CreateNetns("lm1-n0"),
        CreateCgroup("lm1"),
        CreateCgroup("lm1/n0"),
        SetNat("lm1-b0", "10.10.0.0/24"),
        spawn(),
    )
    assert render_teardown(host).splitlines() == [
        "# host: local",
        "# processes: kill every process of each node's cgroup",
        "echo 1 > /sys/fs/cgroup/labmgr/lm1/n0/cgroup.kill",
        "# links: every host-side link of the deployment, in one group delete",
        "ip link delete group 65537",
        "# network namespaces (their links go with them)",
        "ip netns delete lm1-n0",
        "# firewall rules",
        "iptables -t nat -D POSTROUTING -s 10.10.0.0/24 ! -o lm1-b0 -j MASQUERADE",
        "iptables -D FORWARD -i lm1-b0 -o lm+ -j DROP",
        "iptables -D FORWARD -i lm1-b0 ! -o lm1-b0 -d 169.254.0.0/16 -j DROP",
        "iptables -D FORWARD -o lm1-b0 ! -i lm1-b0 -m conntrack ! --ctstate ESTABLISHED,RELATED"
        " -j DROP",
        "iptables -D FORWARD -i lm1-b0 -o lm1-b0 -j ACCEPT",
        "# cgroups, children first, and the nodes' files",
        "rmdir /sys/fs/cgroup/labmgr/lm1/n0",
        "rmdir /sys/fs/cgroup/labmgr/lm1",
        "rm -rf /run/labmgr/lm1",
    ]


def test_hosts_lines_every_node_shares_are_written_once_per_host() -> None:
    shared = (("10.10.0.10", "web"), ("10.10.0.11", "db"), ("127.0.0.1", "localhost"))
    db = spawn(
        node="db",
        netns="lm1-n1",
        cgroup="lm1/n1",
        hostname="database",
        hosts=(*shared[:2], ("10.10.0.11", "database"), shared[2]),
    )
    lines = render_host(plan_of(spawn(hosts=shared), db)).splitlines()
    assert lines[2:4] == [
        "mkdir -p /run/labmgr/lm1",
        "printf '%s\\n' '10.10.0.10 web' '10.10.0.11 db' '127.0.0.1 localhost'"
        " > /run/labmgr/lm1/hosts",
    ]
    assert "cp /run/labmgr/lm1/hosts /run/labmgr/lm1/n0/hosts" in lines
    assert (
        "{ cat /run/labmgr/lm1/hosts; printf '%s\\n' '10.10.0.11 database'; }"
        " > /run/labmgr/lm1/n1/hosts"
    ) in lines
