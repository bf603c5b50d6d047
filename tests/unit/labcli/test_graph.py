"""`labmgr graph`'s drawing of links of one endpoint: an edge to the bridge a network link
is a port of, and a vertex of its own for what is beyond the others."""

from __future__ import annotations

from labcli.graph import dot, edges, mermaid

LAB = {
    "labfile": 2,
    "name": "edges",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.10.0.0/24"}},
    "nodes": {"r1": {"networks": {"lan": {"ifname": "eth0", "ipv4": "10.10.0.2"}}}},
    "links": [
        {"type": "network", "endpoints": ["r1:eth1"], "network": "lan", "ipv4": ["10.10.0.9/24"]},
        {"type": "host", "endpoints": ["r1:eth2"], "ipv4": ["10.0.99.2/30", "10.0.99.1/30"]},
        {"type": "vxlan", "endpoints": ["r1:vx0"], "remote": "192.0.2.7", "vni": 7},
        {"type": "dummy", "endpoints": ["r1:lo1"]},
    ],
}


def test_a_network_link_is_an_edge_to_its_bridge_and_the_others_to_what_is_beyond() -> None:
    attached, linked, outside = edges(LAB)

    assert attached == [("r1", "lan", "eth0 10.10.0.2"), ("r1", "lan", "eth1 10.10.0.9/24")]
    assert linked == []
    assert outside == [
        ("r1", "host", "eth2 10.0.99.2/30"),
        ("r1", "VXLAN 7 to 192.0.2.7", "vx0"),
        ("r1", "dummy", "lo1"),
    ]


def test_both_formats_draw_the_far_sides_as_vertices_of_their_own() -> None:
    drawn = mermaid(LAB).splitlines()
    assert '  far_1{{"VXLAN 7 to 192.0.2.7"}}' in drawn
    assert '  node_r1 ---|"vx0"| far_1' in drawn
    assert '  node_r1 ---|"eth1 10.10.0.9/24"| net_lan' in drawn

    text = dot(LAB)
    assert '  far_0 [label="host", shape=hexagon];' in text
    assert '  node_r1 -- far_0 [label="eth2 10.0.99.2/30"];' in text
