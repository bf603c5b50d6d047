"""containerlab topologies in and out: what a containerlab user's file becomes, what is
refused by the topology's own field names, and that an export reads back the same."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from labplan.errors import LabfileError
from labplan.export import dump
from labplan.interop import from_labfile, to_labfile
from labplan.interop.clab import format_memory, parse_memory
from labplan.labfile import validate

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
    assert any(n.startswith("topology.nodes.router1.binds: not carried over") for n in notes)
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
            - endpoints: [h2:eth1, host:veth0]
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
        "topology.links.0.endpoints.1",
        "topology.links.1.endpoints.1",
        "topology.links.2.type",
        "topology.links.3.endpoints.0",
        "topology.links.5.endpoints.0",
    ]
    assert "vendor network system labmgr does not run" in errors[0]
    assert errors[6].endswith("a link to the host has no labfile form")
    assert errors[10].endswith("h3:eth1 is already an endpoint of another link")


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
