"""The lean rtnetlink encoder, read back by pyroute2's decoder (no root needed)."""

from __future__ import annotations

import errno
import socket
import struct

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # type: ignore[import-untyped]

from workers.kernel import rtnl


def framed(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, rtnl.NLM_F_REQUEST, 1, 0) + body


def test_a_veth_request_carries_its_peer_inside_the_nodes_namespace() -> None:
    body = (
        rtnl.ifinfo()
        + rtnl.string(rtnl.IFLA_IFNAME, "lm7-v0x0")
        + rtnl.u32(rtnl.IFLA_MTU, 1400)
        + rtnl.u32(rtnl.IFLA_GROUP, 0x10007)
        + rtnl.link_info("veth", rtnl.veth_peer("eth0", 7, 1400, "02:42:0a:00:00:01"))
    )
    msg = ifinfmsg(framed(rtnl.RTM_NEWLINK, body))
    msg.decode()

    assert msg.get_attr("IFLA_IFNAME") == "lm7-v0x0"
    assert msg.get_attr("IFLA_GROUP") == 0x10007
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = dict(info.get_attr("IFLA_INFO_DATA")["attrs"])["VETH_INFO_PEER"]
    assert dict(peer["attrs"]) == {
        "IFLA_IFNAME": "eth0",
        "IFLA_NET_NS_FD": 7,
        "IFLA_MTU": 1400,
        "IFLA_ADDRESS": "02:42:0a:00:00:01",
    }


def test_setting_a_link_up_changes_only_the_up_flag() -> None:
    msg = ifinfmsg(framed(rtnl.RTM_SETLINK, rtnl.ifinfo(flags=rtnl.IFF_UP, change=rtnl.IFF_UP)))
    msg.decode()

    assert (msg["flags"], msg["change"], msg["index"]) == (1, 1, 0)


def test_addresses_and_links_parse_back() -> None:
    raw = socket.inet_aton("10.200.0.7")
    address = struct.pack("=BBBBI", socket.AF_INET, 16, 0, 0, 5) + rtnl.attr(rtnl.IFA_ADDRESS, raw)
    link = (
        rtnl.ifinfo(index=9)
        + rtnl.string(rtnl.IFLA_IFNAME, "lm7-b0")
        + rtnl.u32(rtnl.IFLA_GROUP, 3)
        + rtnl.attr(rtnl.IFLA_IFALIAS, b"labmgr:lm7")
    )
    decoded = ifaddrmsg(framed(rtnl.RTM_NEWADDR, address))
    decoded.decode()

    assert rtnl.parse_address(address) == rtnl.Address(5, "10.200.0.7", 16)
    assert decoded.get_attr("IFA_ADDRESS") == "10.200.0.7"
    assert rtnl.parse_link(link) == rtnl.Link(9, "lm7-b0", 3, "labmgr:lm7")


def test_ipv6_addresses_and_routes_parse_back() -> None:
    address = struct.pack("=BBBBI", socket.AF_INET6, 64, 0, 0, 4) + rtnl.attr(
        rtnl.IFA_ADDRESS, socket.inet_pton(socket.AF_INET6, "fd00::2")
    )
    default = struct.pack("=BBBBBBBBI", socket.AF_INET6, 0, 0, 0, 254, 3, 0, 1, 0)
    default += rtnl.attr(rtnl.RTA_GATEWAY, socket.inet_pton(socket.AF_INET6, "fd00::1"))
    default += rtnl.attr(rtnl.RTA_OIF, struct.pack("=I", 4))
    on_link = struct.pack("=BBBBBBBBI", socket.AF_INET6, 64, 0, 0, 254, 2, 0, 1, 0)
    on_link += rtnl.attr(rtnl.RTA_DST, socket.inet_pton(socket.AF_INET6, "fd00:51::"))

    assert rtnl.parse_address(address) == rtnl.Address(4, "fd00::2", 64)
    assert rtnl.parse_route(default) == rtnl.Route("::/0", 4, "fd00::1", 1)
    assert rtnl.parse_route(on_link) == rtnl.Route("fd00:51::/64", 0, None, 1)


def test_an_error_ack_says_what_the_kernel_said() -> None:
    echoed = struct.pack("=IHHII", 16, rtnl.RTM_NEWLINK, 5, 1, 0)
    body = struct.pack("=i", -errno.EEXIST) + echoed + rtnl.string(1, "File exists (extack)")

    assert rtnl.error_of(rtnl.NLM_F_ACK_TLVS, body) == (errno.EEXIST, "File exists (extack)")
    assert rtnl.error_of(0, struct.pack("=i", 0) + echoed) == (0, "")


def test_messages_splits_a_datagram_in_order() -> None:
    data = framed(rtnl.RTM_NEWLINK, rtnl.ifinfo(index=1)) + framed(rtnl.NLMSG_DONE, b"\0" * 4)

    assert [(kind, seq) for kind, _, seq, _ in rtnl.messages(data)] == [
        (rtnl.RTM_NEWLINK, 1),
        (rtnl.NLMSG_DONE, 1),
    ]
