"""containerlab topologies in and out: what a containerlab user's file becomes, what is
refused by the topology's own field names, and that an export reads back the same."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from labplan.errors import LabfileError
from labplan.export import dump
from labplan.interop import from_labfile, to_labfile
from labplan.interop.clab import format_memory, parse_memory
from labplan.labfile import admin_requirements, validate

FRR = textwrap.dedent(
    """
    name: frr01
    topology:
      defaults:
        env: {LAB: frr}
      kinds:
        linux:
          image: quay.io/frrouting/frr:10.2.1
          memory: 256Mb
      nodes:
        router1:
          kind: linux
          binds: [router1/daemons:/etc/frr/daemons]
          env: {ROLE: edge}
          exec:
            - ip addr add 10.0.12.1/30 dev eth1
            - ip -6 addr add fd00:12::1/64 dev eth1
            - ip route add 10.0.23.0/30 via 10.0.12.2
            - touch /tmp/ready
        router2:
          kind: linux
          cpu: 1.5
          exec:
            - ip addr add 10.0.12.2/30 dev eth1
            - ip -6 addr add fd00:12::2/64 dev eth1
            - ip address add 10.0.23.1/30 dev eth2
        router3:
          kind: linux
          exec: [ip addr add 10.0.23.2/30 dev eth1]
        PC_1:
          kind: linux
          image: alpine:3.20
          cmd: sh -c 'sleep infinity'
          exec: ["ip addr add 192.168.1.10/24 dev eth1", "ip route replace default via 192.168.1.1"]
        sw:
          kind: bridge
      links:
        - endpoints: ["router1:eth1", "router2:eth1"]
        - endpoints: ["router2:eth2", "router3:eth1"]
          mtu: 9000
        - endpoints: ["PC_1:eth1", "sw:pc1"]
        - endpoints: ["router3:eth2", "sw:r3"]
    """
)


def imported(text: str = FRR) -> tuple[dict, list[str]]:
    result = to_labfile(text)
    assert result.source == "containerlab"
    return result.tree, [str(note) for note in result.notes]


def refusals(text: str) -> list[str]:
    with pytest.raises(LabfileError) as refused:
        to_labfile(textwrap.dedent(text))
    return [str(error) for error in refused.value.errors]


def test_a_containerlab_lab_becomes_a_labfile_that_validates() -> None:
    tree, _ = imported()
    lab = validate(tree)
    assert lab.name == "frr01"
    assert [n.name for n in lab.nodes] == ["pc-1", "router1", "router2", "router3"]
    router1 = next(n for n in lab.nodes if n.name == "router1")
    assert router1.image == "quay.io/frrouting/frr:10.2.1"  # from kinds.linux
    assert router1.environment == {"LAB": "frr", "ROLE": "edge"}  # defaults merged with own
    assert router1.limits.memory == 256 * 1024 * 1024
    assert router1.exec == (("touch", "/tmp/ready"),)
    pc = next(n for n in lab.nodes if n.name == "pc-1")
    assert pc.image == "docker.io/library/alpine:3.20"
    assert pc.command == ("sh", "-c", "sleep infinity")
    assert next(n for n in lab.nodes if n.name == "router2").limits.cpus == 1.5


def test_every_node_joins_the_management_network_on_eth0() -> None:
    lab = validate(imported()[0])
    mgmt = next(n for n in lab.networks if n.name == "clab")
    assert (mgmt.driver, mgmt.subnet, mgmt.gateway) == ("bridge", "172.20.20.0/24", "172.20.20.1")
    for node in lab.nodes:
        attachment = next(a for a in node.networks if a.network == "clab")
        assert attachment.ifname == "eth0"


def test_address_and_route_commands_become_the_labfiles_own() -> None:
    tree, notes = imported()
    lab = validate(tree)
    first, second = lab.links
    assert [(e.node, e.ifname, e.ipv4, e.ipv6) for e in first.ends] == [
        ("router1", "eth1", "10.0.12.1/30", "fd00:12::1/64"),
        ("router2", "eth1", "10.0.12.2/30", "fd00:12::2/64"),
    ]
    assert second.mtu == 9000
    assert [e.ipv4 for e in second.ends] == ["10.0.23.1/30", "10.0.23.2/30"]
    router1 = next(n for n in lab.nodes if n.name == "router1")
    assert [(r.dst, r.via) for r in router1.routes] == [
        ("0.0.0.0/0", "172.20.20.1"),  # containerlab's own default route, kept
        ("10.0.23.0/30", "10.0.12.2"),
    ]
    pc = next(n for n in lab.nodes if n.name == "pc-1")
    assert [(r.dst, r.via) for r in pc.routes] == [("0.0.0.0/0", "192.168.1.1")]
    assert (
        "topology.nodes.router1.exec.0: became links.0.ipv4 (ip addr add 10.0.12.1/30 dev eth1)"
        in notes
    )
    assert (
        "topology.nodes.router1.exec.2: became nodes.router1.routes "
        "(ip route add 10.0.23.0/30 via 10.0.12.2)"
    ) in notes


def test_a_bridge_node_becomes_a_bridge_network_with_the_subnet_its_ports_use() -> None:
    tree, notes = imported()
    lab = validate(tree)
    sw = next(n for n in lab.networks if n.name == "sw")
    assert (sw.driver, sw.subnet, sw.gateway) == ("bridge", "192.168.1.0/24", None)
    pc = next(n for n in lab.nodes if n.name == "pc-1")
    port = next(a for a in pc.networks if a.network == "sw")
    assert (port.ifname, port.ipv4) == ("eth1", "192.168.1.10")
    assert any(note.startswith("topology.nodes.sw: the bridge becomes") for note in notes)


def test_a_bridge_without_addresses_gets_a_free_subnet_and_a_note() -> None:
    tree, notes = imported(
        """
        name: l2
        topology:
          nodes:
            a: {kind: linux, image: alpine:3.20}
            b: {kind: linux, image: alpine:3.20}
            br1: {kind: bridge}
          links:
            - endpoints: [a:eth1, br1:a1]
            - endpoints: [b:eth1, br1:b1]
        """
    )
    lab = validate(tree)
    br1 = next(n for n in lab.networks if n.name == "br1")
    assert br1.subnet == "172.20.21.0/24" and br1.gateway is None
    assert any(
        n.startswith("topology.nodes.br1: a labfile bridge network has a subnet") for n in notes
    )


def test_what_is_not_carried_over_is_noted_by_its_source_path() -> None:
    _, notes = imported()
    assert any(n.startswith("topology.nodes.router1.binds.0: the lab's volume") for n in notes)
    assert "topology.nodes.PC_1: 'PC_1' is written 'pc-1': a node's name is [a-z][a-z0-9-]" in notes
    assert any(n.startswith("mgmt: the management network 'clab' is 172.20.20.0/24") for n in notes)


def test_mgmt_settings_network_mode_and_mgmt_addresses() -> None:
    tree, _ = imported(
        """
        name: mg
        mgmt:
          network: lab-mgmt
          ipv4-subnet: 172.30.30.0/24
          ipv4-gw: 172.30.30.254
          ipv6-subnet: fd00:30::/64
          ipv6-gw: fd00:30::1
          mtu: 1400
        topology:
          nodes:
            a: {kind: linux, image: alpine:3.20, mgmt-ipv4: 172.30.30.10, mgmt-ipv6: "fd00:30::10"}
            b: {kind: linux, image: alpine:3.20, network-mode: none}
        """
    )
    lab = validate(tree)
    mgmt = next(n for n in lab.networks if n.name == "lab-mgmt")
    assert (mgmt.subnet, mgmt.gateway, mgmt.subnet6, mgmt.gateway6, mgmt.mtu) == (
        "172.30.30.0/24",
        "172.30.30.254",
        "fd00:30::/64",
        "fd00:30::1",
        1400,
    )
    exported = yaml.safe_load(from_labfile(lab, "containerlab").text)
    assert exported["mgmt"]["ipv6-gw"] == "fd00:30::1"
    a = next(n for n in lab.nodes if n.name == "a")
    assert (a.networks[0].ipv4, a.networks[0].ipv6) == ("172.30.30.10", "fd00:30::10")
    b = next(n for n in lab.nodes if n.name == "b")
    assert [(x.network) for x in b.networks] == ["none"]
    assert next(n for n in lab.networks if n.name == "none").driver == "none"


def test_what_has_no_labfile_form_is_refused_all_at_once_by_source_path() -> None:
    errors = refusals(
        """
        name: bad
        topology:
          nodes:
            srl: {kind: nokia_srlinux, image: ghcr.io/nokia/srlinux}
            h1: {kind: linux, image: alpine, network-mode: "container:h9", bogus: 1}
            h2: {kind: linux, image: alpine, memory: lots, cmd: "sh -c 'unterminated"}
            h3: {kind: linux, image: alpine, env-files: [lab.env]}
          links:
            - endpoints: [h2:eth0, mgmt-net:veth0]
            - endpoints: [h2:eth1, h9:eth1]
            - type: vxlan
              endpoint: {node: h2, interface: vx0}
            - endpoints: [h3:eth0, h2:eth3]
            - endpoints: [h3:eth1, h2:eth2]
            - endpoints: [h3:eth1, h2:eth4]
        """
    )
    paths = [e.split(": ", 1)[0] for e in errors]
    assert paths == [
        "topology.nodes.srl.kind",
        "topology.nodes.h1.bogus",
        "topology.nodes.h1.network-mode",
        "topology.nodes.h2.cmd",
        "topology.nodes.h2.memory",
        "topology.nodes.h3.env-files",
        "topology.links.0.endpoints.0",
        "topology.links.1.endpoints.1",
        "topology.links.2.remote",
        "topology.links.2.vni",
        "topology.links.3.endpoints.0",
        "topology.links.5.endpoints.0",
    ]
    assert "vendor network system labmgr does not run" in errors[0]
    assert "eth0 is the node's management interface; links use eth1 and on" in errors[6]
    assert errors[11].endswith("h3:eth1 is already an endpoint of another link")


def test_exported_lab_reads_back_the_same() -> None:
    lab = validate(imported()[0])
    exported = from_labfile(lab, "containerlab")
    topology = yaml.safe_load(exported.text)
    assert topology["name"] == "frr01"
    assert topology["mgmt"] == {"network": "clab", "ipv4-subnet": "172.20.20.0/24"}
    assert topology["topology"]["nodes"]["sw"] == {"kind": "bridge"}
    router1 = topology["topology"]["nodes"]["router1"]
    assert router1["memory"] == "256Mb"
    assert router1["exec"][:3] == [
        "ip address add 10.0.12.1/30 dev eth1",
        "ip address add fd00:12::1/64 dev eth1",
        "ip route add 10.0.23.0/30 via 10.0.12.2",
    ]
    assert {
        "type": "veth",
        "mtu": 9000,
        "endpoints": [
            {"node": "router2", "interface": "eth2"},
            {"node": "router3", "interface": "eth1"},
        ],
    } in topology["topology"]["links"]
    again = validate(to_labfile(exported.text).tree)
    assert dump(again) == dump(lab)


def test_export_notes_what_containerlab_cannot_hold() -> None:
    lab = validate(
        {
            "labfile": 2,
            "name": "shaped",
            "networks": {"lan": {"subnet": "10.213.0.0/24"}, "wan": {"subnet": "10.213.1.0/24"}},
            "nodes": {
                "a": {"networks": {"lan": {}}, "limits": {"pids": 64}},
                "b": {"image": "alpine:3.20", "networks": {"lan": {}, "wan": {}}},
            },
            "links": [{"endpoints": ["a:eth1", "b:eth2"], "impairments": {"delay": "10ms"}}],
        }
    )
    exported = from_labfile(lab, "containerlab")
    notes = [str(n) for n in exported.notes]
    assert "nodes.a.limits.pids: not carried over: containerlab has no such limit" in notes
    assert any(
        n.startswith("nodes.a: runs the host's tree; containerlab needs an image") for n in notes
    )
    assert any(n.startswith("links.0.impairments: not carried over") for n in notes)
    assert any(
        n.startswith("networks.wan: containerlab needs a Linux bridge named 'wan'") for n in notes
    )
    topology = yaml.safe_load(exported.text)
    assert topology["mgmt"]["network"] == "lan"  # every node joins it on eth0
    assert {"endpoints": ["b:eth1", "wan:wanp0"]} in topology["topology"]["links"]


@pytest.mark.parametrize(
    ("text", "size"),
    [("1Gb", 1 << 30), ("512MiB", 512 << 20), ("1.5g", 3 << 29), ("2048", 2048), ("64kb", 65536)],
)
def test_memory_sizes_count_in_powers_of_1024_as_docker_does(text: str, size: int) -> None:
    assert parse_memory(text) == size


def test_memory_sizes_written_back_read_the_same() -> None:
    for size in (1 << 30, 300 << 20, 12345):
        assert parse_memory(format_memory(size)) == size
    with pytest.raises(ValueError, match="is not a size"):
        parse_memory("12 parsecs")


def test_a_node_in_anothers_network_namespace_comes_and_goes_as_network_mode() -> None:
    tree, _ = imported(
        """
        name: pod
        topology:
          nodes:
            app: {kind: linux, image: nginx:1.27}
            side: {kind: linux, image: alpine:3.20, network-mode: container:app}
        """
    )
    assert tree["labfile"] == 2
    assert tree["nodes"]["side"]["network_mode"] == "container:app"
    assert "networks" not in tree["nodes"]["side"]
    lab = validate(tree)
    assert next(n for n in lab.nodes if n.name == "side").joins == "app"
    exported = yaml.safe_load(from_labfile(lab, "containerlab").text)
    assert exported["topology"]["nodes"]["side"]["network-mode"] == "container:app"
    assert dump(validate(to_labfile(from_labfile(lab, "containerlab").text).tree)) == dump(lab)


BINDS = """
name: binds
topology:
  defaults:
    binds: [/srv/course:/course:ro]
  kinds:
    linux:
      image: alpine:3.20
      binds: [shared/:/shared]
  nodes:
    r1:
      kind: linux
      binds:
        - r1/frr:/etc/frr
        - __clabDir__/volumes/captures:/captures
    r2:
      kind: linux
      binds:
        - /srv/course/r2:/course
        - __clabDir__/volumes/captures:/captures:ro,z
        - __clabNodeDir__/state:/var/lib/state
        - /scratch
"""


def test_binds_merge_as_containerlab_merges_them_the_nodes_own_winning() -> None:
    tree, notes = imported(BINDS)
    assert tree["labfile"] == 2
    assert tree["nodes"]["r1"]["mounts"] == [
        {"host": "/srv/course", "path": "/course", "readonly": True},  # from defaults
        {"volume": "shared", "path": "/shared"},  # from kinds.linux
        {"volume": "r1-frr", "path": "/etc/frr"},
        {"volume": "captures", "path": "/captures"},
    ]
    assert tree["nodes"]["r2"]["mounts"] == [
        {"volume": "shared", "path": "/shared"},
        {"host": "/srv/course/r2", "path": "/course"},  # takes the default's place
        {"volume": "captures", "path": "/captures", "readonly": True},
        {"volume": "r2-state", "path": "/var/lib/state"},
        {"volume": "r2-volume", "path": "/scratch"},
    ]
    assert tree["volumes"] == {
        "shared": {},
        "r1-frr": {},
        "captures": {},
        "r2-state": {},
        "r2-volume": {},
    }
    # An inherited bind is noted once, at the field that gives it.
    assert [n for n in notes if n.startswith("topology.defaults.binds.0:")] == [
        "topology.defaults.binds.0: /srv/course is a path of the host: mounting it is for "
        "admins only"
    ]
    assert sum(n.startswith("topology.kinds.linux.binds.0: the lab's volume") for n in notes) == 1
    assert any(
        n.startswith(
            "topology.nodes.r1.binds.0: the lab's volume 'r1-frr', a tmpfs of the "
            "deployment: it starts empty"
        )
        and "r1/frr is in the topology's folder" in n
        for n in notes
    )
    assert "topology.nodes.r2.binds.1: z: not carried over" in notes
    lab = validate(tree)
    assert {e.path for e in admin_requirements(lab)} == {
        "nodes.r1.mounts.0.host",
        "nodes.r2.mounts.1.host",
    }


def test_binds_with_no_labfile_form_are_refused_by_their_own_field() -> None:
    errors = refusals(
        """
        name: bad
        topology:
          kinds:
            linux: {image: alpine:3.20, binds: ["~/lab:/lab"]}
          nodes:
            a: {kind: linux, binds: [/srv/x:/etc, "/a:/b:ro:extra", /srv/y:/proc/y, "/c:rel"]}
            b: {kind: linux, binds: "/srv/z:/z"}
        """
    )
    assert errors == [
        "topology.nodes.a.binds.1: '/a:/b:ro:extra' is not HOST:NODE[:MODE]",
        "topology.kinds.linux.binds.0: '~/lab' is in the home folder of whoever runs "
        "containerlab: write an absolute path of the host (admins only), or a relative one for "
        "a volume of the lab",
        "topology.nodes.a.binds.0: /etc is the node's own (its tree, or the lab's /etc/hosts): "
        "mount below it",
        "topology.nodes.a.binds.2: /proc/y is in the node's /proc, which the kernel fills: "
        "mount elsewhere",
        "topology.nodes.a.binds.3: 'rel' is not an absolute path inside the node",
        "topology.nodes.b.binds: binds is a list of HOST:NODE[:MODE]",
    ]


def test_mounts_export_as_binds_and_read_back_the_same() -> None:
    lab = validate(imported(BINDS)[0])
    exported = from_labfile(lab, "containerlab")
    topology = yaml.safe_load(exported.text)
    assert topology["topology"]["nodes"]["r2"]["binds"] == [
        "__clabDir__/volumes/shared:/shared",
        "/srv/course/r2:/course",
        "__clabDir__/volumes/captures:/captures:ro",
        "__clabDir__/volumes/r2-state:/var/lib/state",
        "__clabDir__/volumes/r2-volume:/scratch",
    ]
    notes = [str(n) for n in exported.notes]
    assert (
        "volumes.captures: a folder of the lab's directory in containerlab "
        "(clab-binds/volumes/captures), on disk: containerlab checks a bind's folder is there, "
        "so make it beside the topology before it deploys: mkdir -p clab-binds/volumes/captures"
    ) in notes
    assert dump(validate(to_labfile(exported.text).tree)) == dump(lab)


def test_a_volumes_size_is_noted_as_what_containerlab_cannot_hold() -> None:
    lab = validate(
        {
            "labfile": 2,
            "name": "sized",
            "volumes": {"data": {"size": "64M"}, "logs": {}},
            "nodes": {
                "a": {
                    "image": "alpine:3.20",
                    "mounts": [
                        {"volume": "data", "path": "/data"},
                        {"volume": "logs", "path": "/logs"},
                    ],
                }
            },
        }
    )
    notes = [str(n) for n in from_labfile(lab, "containerlab").notes]
    assert "volumes.data.size: not carried over: a containerlab bind has no size" in notes
    assert not any(n.startswith("volumes.logs.size") for n in notes)


MACVLAN = """
name: lan-edge
topology:
  nodes:
    edge1: {kind: linux, image: alpine:3.20, exec: [ip addr add 192.168.88.21/24 dev eth1]}
    edge2: {kind: linux, image: alpine:3.20}
    probe: {kind: linux, image: alpine:3.20}
  links:
    - type: macvlan
      endpoint: {node: edge1, interface: eth1, mac: "02:00:00:00:00:01"}
      host-interface: enp0s3
    - endpoints: [macvlan:enp0s3, edge2:eth1]
    - type: macvlan
      endpoint: {node: probe, interface: eth1}
      host-interface: enp0s3
      mode: private
      mtu: 1400
"""


def test_a_macvlan_link_joins_a_macvlan_network_of_the_host_interface() -> None:
    tree, notes = imported(MACVLAN)
    assert tree["networks"]["macvlan-enp0s3"] == {
        "driver": "macvlan",
        "parent": "host:enp0s3",
        "mode": "bridge",
        "subnet": "192.168.88.0/24",  # where edge1's address command puts it
    }
    assert tree["networks"]["macvlan-enp0s3-private"] == {
        "driver": "macvlan",
        "parent": "host:enp0s3",
        "mode": "private",
        "mtu": 1400,
        "subnet": "172.20.21.0/24",
    }
    assert tree["nodes"]["edge1"]["networks"]["macvlan-enp0s3"] == {
        "ifname": "eth1",
        "ipv4": "192.168.88.21",
    }
    assert tree["nodes"]["edge2"]["networks"]["macvlan-enp0s3"] == {"ifname": "eth1"}
    assert (
        "topology.links.0: the macvlan network 'macvlan-enp0s3' of the host's enp0s3 "
        "(parent: host:enp0s3, for admins only), on edge1's eth1"
    ) in notes
    assert any(
        n.startswith(
            "topology.links.2: a labfile macvlan network has a subnet: "
            "'macvlan-enp0s3-private' is 172.20.21.0/24"
        )
        for n in notes
    )
    assert "topology.links.0.endpoint.mac: not carried over: the macvlan's MAC is labmgr's" in notes
    lab = validate(tree)
    assert {e.path for e in admin_requirements(lab)} == {
        "networks.macvlan-enp0s3.parent",
        "networks.macvlan-enp0s3-private.parent",
    }
    exported = from_labfile(lab, "containerlab")
    links = yaml.safe_load(exported.text)["topology"]["links"]
    assert {
        "type": "macvlan",
        "endpoint": {"node": "probe", "interface": "eth1"},
        "host-interface": "enp0s3",
        "mode": "private",
        "mtu": 1400,
    } in links
    assert dump(validate(to_labfile(exported.text).tree)) == dump(lab)


def test_a_macvlan_link_that_does_not_fit_is_refused_by_field() -> None:
    errors = refusals(
        """
        name: bad
        topology:
          nodes:
            a: {kind: linux, image: alpine:3.20}
          links:
            - type: macvlan
              endpoint: {node: a, interface: eth1}
              host-interface: en0
              mode: source
            - {type: macvlan, endpoint: {node: a, interface: eth0}, host-interface: en0}
            - {type: macvlan, endpoint: {node: z, interface: eth1}, host-interface: en0}
            - {type: macvlan, endpoint: {node: a}, host-interface: en0, remote: 1.2.3.4}
            - {type: macvlan, endpoint: {node: a, interface: eth2}}
            - endpoints: [a:eth3, b:eth1]
            - endpoints: [a:eth3, macvlan:en0]
            - endpoints: [a:eth3, macvlan:en1]
        """
    )
    assert [e.split(": ", 1)[0] for e in errors] == [
        "topology.links.0.mode",
        "topology.links.1.endpoint",
        "topology.links.2.endpoint",
        "topology.links.3.remote",
        "topology.links.3.endpoint",
        "topology.links.4.host-interface",
        "topology.links.5.endpoints.1",
        "topology.links.7.endpoints.0",
    ]
    assert errors[-1].endswith("a:eth3 is already an endpoint of another link")


def one_link(link: dict[str, object]) -> Any:
    text = yaml.safe_dump(
        {
            "name": "x",
            "topology": {"nodes": {"a": {"kind": "linux", "image": "alpine"}}, "links": [link]},
        }
    )
    return to_labfile(text)


@pytest.mark.parametrize(
    ("link", "wanted"),
    [
        (
            {"endpoints": ["host:a-eth1", "a:eth1"]},
            {"type": "host", "endpoints": ["a:eth1"], "host_ifname": "a-eth1"},
        ),
        (
            {
                "type": "host",
                "endpoint": {"node": "a", "interface": "eth1", "mac": "02:00:00:00:00:01"},
                "host-interface": "a-eth1",
                "mtu": 9000,
            },
            {"type": "host", "endpoints": ["a:eth1"], "mtu": 9000, "host_ifname": "a-eth1"},
        ),
        (
            {"type": "dummy", "endpoint": {"node": "a", "interface": "d0"}},
            {"type": "dummy", "endpoints": ["a:d0"]},
        ),
        (
            {
                "type": "vxlan",
                "endpoint": {"node": "a", "interface": "vx0"},
                "remote": "198.51.100.1",
                "vni": 10,
                "udp-port": 4790,
            },
            {
                "type": "vxlan",
                "endpoints": ["a:vx0"],
                "remote": "198.51.100.1",
                "vni": 10,
                "port": 4790,
            },
        ),
        (
            {
                "type": "vxlan-stitch",
                "endpoint": {"node": "a", "interface": "vx0"},
                "remote": "198.51.100.1",
                "vni": 10,
            },
            {
                "type": "vxlan",
                "endpoints": ["a:vx0"],
                "remote": "198.51.100.1",
                "vni": 10,
                "port": 4789,
            },
        ),
        (
            {
                "type": "mgmt-net",
                "endpoint": {"node": "a", "interface": "eth1"},
                "host-interface": "a-eth1",
                "mtu": 1500,
            },
            {"type": "network", "endpoints": ["a:eth1"], "network": "clab", "mtu": 1500},
        ),
        (
            {"endpoints": ["a:eth1", "mgmt-net:a-eth1"]},
            {"type": "network", "endpoints": ["a:eth1"], "network": "clab"},
        ),
    ],
)
def test_a_link_of_one_endpoint_becomes_the_labfiles_own(
    link: dict[str, object], wanted: dict[str, object]
) -> None:
    imported = one_link(link)

    assert imported.tree["links"] == [wanted]
    validate(imported.tree)


def test_a_mgmt_net_link_is_a_second_port_on_the_management_network_for_anyone() -> None:
    imported = one_link({"endpoints": ["a:eth1", "mgmt-net:a-eth1"]})

    lab = validate(imported.tree)
    assert admin_requirements(lab) == []
    assert [a.network for a in lab.node("a").networks] == ["clab"]
    (port,) = lab.ports
    assert (port.type, port.network, port.host_ifname) == ("network", "clab", None)
    said = {(n.path, n.message) for n in imported.notes}
    assert (
        "topology.links.0",
        "not carried over: labmgr names the bridge's side itself (an admin may add host_ifname)",
    ) in said


def test_a_second_link_of_a_node_to_a_bridge_node_is_a_network_link() -> None:
    text = yaml.safe_dump(
        {
            "name": "x",
            "topology": {
                "nodes": {"a": {"kind": "linux", "image": "alpine"}, "br": {"kind": "bridge"}},
                "links": [{"endpoints": ["a:eth1", "br:p1"]}, {"endpoints": ["a:eth2", "br:p2"]}],
            },
        }
    )
    imported = to_labfile(text)

    assert imported.tree["nodes"]["a"]["networks"]["br"] == {"ifname": "eth1"}
    assert imported.tree["links"] == [{"type": "network", "endpoints": ["a:eth2"], "network": "br"}]
    assert ("topology.links.1", "a's second interface on br: a link of type network") in {
        (n.path, n.message) for n in imported.notes
    }
    lab = validate(imported.tree)
    again = yaml.safe_load(from_labfile(lab, "containerlab").text)["topology"]["links"]
    assert again == [{"endpoints": ["a:eth1", "br:brp0"]}, {"endpoints": ["a:eth2", "br:brl0"]}]


def test_what_an_imported_link_of_one_endpoint_changes_is_noted() -> None:
    imported = one_link(
        {
            "type": "vxlan-stitch",
            "endpoint": {"node": "a", "interface": "vx0", "mac": "02:00:00:00:00:01"},
            "remote": "198.51.100.1",
            "vni": 10,
            "labels": {"x": "y"},
        }
    )

    said = {(n.path, n.message.split(":")[0].split(" (")[0]) for n in imported.notes}
    assert ("topology.links.0.labels", "not carried over") in said
    assert ("topology.links.0.endpoint.mac", "not carried over") in said
    assert any(
        p == "topology.links.0.type" and "inside the node" in m
        for p, m in ((n.path, n.message) for n in imported.notes)
    )
    assert any(
        p == "topology.links.0.remote" and "admins only" in m
        for p, m in ((n.path, n.message) for n in imported.notes)
    )


@pytest.mark.parametrize(
    ("link", "path", "message"),
    [
        (
            {"type": "host", "endpoint": {"node": "a", "interface": "eth1"}},
            "topology.links.0.host-interface",
            "a host link names the host's interface",
        ),
        (
            {"type": "vxlan", "endpoint": {"node": "a", "interface": "vx0"}, "vni": 3},
            "topology.links.0.remote",
            "a vxlan link needs its remote",
        ),
        (
            {"type": "dummy", "endpoint": {"node": "a", "interface": "d0"}, "remote": "x"},
            "topology.links.0.remote",
            "'remote' is not a key of a dummy link",
        ),
        (
            {"type": "dummy", "endpoint": "a:d0"},
            "topology.links.0.endpoint",
            "a dummy link's endpoint names a node and an interface",
        ),
        (
            {"type": "dummy", "endpoint": {"node": "b", "interface": "d0"}},
            "topology.links.0.endpoint",
            "there is no node 'b' under topology.nodes",
        ),
        (
            {"type": "dummy", "endpoint": {"node": "a", "interface": "eth0"}},
            "topology.links.0.endpoint",
            "eth0 is the node's management interface; links use eth1 and on",
        ),
    ],
)
def test_a_bad_link_of_one_endpoint_is_refused_by_its_source_path(
    link: dict[str, object], path: str, message: str
) -> None:
    with pytest.raises(LabfileError) as refused:
        one_link(link)
    assert [(e.path, e.message) for e in refused.value.errors] == [(path, message)]


def test_an_admins_link_imported_by_a_user_is_refused_by_the_files_path() -> None:
    from labplan.labfile import admin_requirements

    imported = one_link(
        {
            "type": "vxlan",
            "endpoint": {"node": "a", "interface": "vx0"},
            "remote": "198.51.100.1",
            "vni": 10,
        }
    )
    needs = imported.in_file_terms(admin_requirements(validate(imported.tree)))
    assert [e.path for e in needs] == ["topology.links.0.type"]
    brief = one_link({"endpoints": ["a:eth1", "host:a-eth1"]})
    needs = brief.in_file_terms(admin_requirements(validate(brief.tree)))
    assert [e.path for e in needs] == ["topology.links.0.endpoints.1"]
