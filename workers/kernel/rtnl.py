"""A lean rtnetlink client for the hot path of a job: links, addresses, routes.

rtnetlink runs a request inside the sender's `send()` (under the RTNL lock), so a
request costs two syscalls and the kernel's own work; what made pyroute2 slow here is its
per-message encoding and event loop (~0.5 ms to encode a veth request, 1-3 ms a request).
Messages are packed with `struct`; only the few attributes labmgr reads are parsed.
Errors carry the kernel's extended ack text when it gives one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

NETLINK_ROUTE = 0
NETLINK_CAP_ACK = 10  # error acks carry the request's header only
NETLINK_EXT_ACK = 11  # ... and the kernel's message saying why
SOL_NETLINK = 270

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLM_F_ACK_TLVS = 0x200  # in an ack: extended ack attributes follow
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWLINKPROP = 108

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_IFALIAS = 20
IFLA_AF_SPEC = 26
IFLA_GROUP = 27
IFLA_NET_NS_FD = 28
IFLA_PROP_LIST = 52
NLA_F_NESTED = 0x8000  # a nested attribute the kernel validates strictly says so
IFLA_ALT_IFNAME = 53
IFLA_VXLAN_ID = 1
IFLA_VXLAN_GROUP = 2  # the remote endpoint, IPv4
IFLA_VXLAN_LINK = 3
IFLA_VXLAN_PORT = 15  # network byte order
IFLA_VXLAN_GROUP6 = 16
AF_INET6 = 10
IFLA_INET6_ADDR_GEN_MODE = 8
IN6_ADDR_GEN_MODE_NONE = 1
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFLA_MACVLAN_MODE = 1
IFLA_VLAN_ID = 1
IFLA_BR_VLAN_FILTERING = 7
AF_BRIDGE = 7
IFLA_BRIDGE_FLAGS = 0
IFLA_BRIDGE_VLAN_INFO = 2
BRIDGE_FLAGS_SELF = 2
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
DEFAULT_PVID = 1  # what a new port of a vlan_filtering bridge is in, untagged
IFLA_IPVLAN_MODE = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_F_NODAD = 0x02
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RTN_UNICAST = 1
# Routes to the host itself or to groups, not to networks (`ip route show table all`).
RTN_NOT_NETWORKS = frozenset({2, 3, 4, 5})  # local, broadcast, anycast, multicast
IFF_UP = 0x1

_HDR = struct.Struct("=IHHII")  # nlmsghdr
_ATTR = struct.Struct("=HH")  # nlattr
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_ERR = struct.Struct("=i")
RECV_SIZE = 1 << 18


class RtnlError(OSError):
    """The kernel refused a request; `errno` says why, the message what was asked."""


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = _ATTR.size + len(payload)
    return _ATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind, b"".join(attrs))


def u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def u16(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=H", value))


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def string(kind: int, value: str) -> bytes:
    """A NUL-terminated string attribute (names, kinds)."""
    return attr(kind, value.encode() + b"\0")


def no_ipv6_autoconf() -> bytes:
    """IFLA_AF_SPEC asking for no IPv6 link-local address (`ip link set X addrgenmode none`)."""
    addr_gen_mode_none = attr(IFLA_INET6_ADDR_GEN_MODE, struct.pack("=B", IN6_ADDR_GEN_MODE_NONE))
    return nested(IFLA_AF_SPEC, nested(AF_INET6, addr_gen_mode_none))


def mac(value: str) -> bytes:
    return bytes(int(part, 16) for part in value.split(":"))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    group: int
    alias: str | None
    mac: str = ""


@dataclass(frozen=True)
class Address:
    index: int
    address: str
    prefixlen: int


@dataclass(frozen=True)
class Route:
    dst: str  # "192.0.2.0/24", "0.0.0.0/0"
    oif: int  # 0 when the route names no single link (multipath, blackhole)
    gateway: str | None
    kind: int  # RTN_*


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Top-level attributes of a message body from `offset` (the last of a kind wins)."""
    found: dict[int, bytes] = {}
    end = len(data)
    while offset + _ATTR.size <= end:
        size, kind = _ATTR.unpack_from(data, offset)
        if size < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _ATTR.size : offset + size]
        offset += (size + 3) & ~3
    return found


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


def parse_link(body: bytes) -> Link:
    _, _, index, _, _ = _IFINFO.unpack_from(body)
    attrs = parse_attrs(body, _IFINFO.size)
    group = attrs.get(IFLA_GROUP)
    alias = attrs.get(IFLA_IFALIAS)
    return Link(
        index=index,
        name=_text(attrs.get(IFLA_IFNAME, b"")),
        group=struct.unpack("=I", group)[0] if group else 0,
        alias=_text(alias) if alias else None,
        mac=":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b"")),
    )


def _any_address(family: int) -> bytes:
    return b"\0" * (16 if family == socket.AF_INET6 else 4)


def parse_address(body: bytes) -> Address:
    family, prefixlen, _, _, index = _IFADDR.unpack_from(body)
    attrs = parse_attrs(body, _IFADDR.size)
    raw = attrs.get(IFA_ADDRESS) or attrs.get(IFA_LOCAL) or _any_address(family)
    return Address(index, socket.inet_ntop(family, raw), prefixlen)


def parse_route(body: bytes) -> Route:
    family, prefixlen, _, _, _, _, _, kind, _ = _RTMSG.unpack_from(body)
    attrs = parse_attrs(body, _RTMSG.size)
    dst = socket.inet_ntop(family, attrs.get(RTA_DST, _any_address(family)))
    oif = attrs.get(RTA_OIF)
    gateway = attrs.get(RTA_GATEWAY)
    return Route(
        dst=f"{dst}/{prefixlen}",
        oif=struct.unpack("=I", oif)[0] if oif else 0,
        gateway=socket.inet_ntop(family, gateway) if gateway else None,
        kind=kind,
    )


def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, body) of each message in a datagram."""
    offset = 0
    while offset + _HDR.size <= len(data):
        size, kind, flags, seq, _ = _HDR.unpack_from(data, offset)
        if size < _HDR.size:
            break
        yield kind, flags, seq, data[offset + _HDR.size : offset + size]
        offset += (size + 3) & ~3


def error_of(flags: int, body: bytes) -> tuple[int, str]:
    """(errno, the kernel's extended message or "") of an NLMSG_ERROR body."""
    (code,) = _ERR.unpack_from(body)
    text = ""
    if flags & NLM_F_ACK_TLVS:
        # With NETLINK_CAP_ACK only the request's header is echoed before the TLVs.
        text = _text(parse_attrs(body, _ERR.size + _HDR.size).get(NLMSGERR_ATTR_MSG, b""))
    return -code, text


class Rtnl:
    """One rtnetlink socket, bound in the network namespace of the thread that opens it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC)
        for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            with contextlib.suppress(OSError):  # older kernels: plain acks are enough
                self.sock.setsockopt(SOL_NETLINK, option, 1)
        self.sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self._seq += 1
        header = _HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST, self._seq, 0)
        self.sock.send(header + body)
        return self._seq

    def _replies(self, seq: int, what: str) -> Iterator[tuple[int, bytes]]:
        """The replies to request `seq` until its ack or end of dump; raises on error."""
        while True:
            data = self.sock.recv(RECV_SIZE)
            for kind, flags, got, body in messages(data):
                if got != seq:
                    continue  # a late reply to an abandoned request
                if kind == NLMSG_ERROR:
                    code, text = error_of(flags, body)
                    if code:
                        reason = os.strerror(code) + (f" ({text})" if text else "")
                        raise RtnlError(code, f"{what}: {reason}")
                    return
                if kind == NLMSG_DONE:
                    return
                yield kind, body
                if not flags & NLM_F_MULTI:
                    return

    def request(self, kind: int, flags: int, body: bytes, what: str) -> list[bytes]:
        """Send one request and wait for its ack (or its replies)."""
        seq = self._send(kind, flags | NLM_F_ACK, body)
        return [reply for _, reply in self._replies(seq, what)]

    def dump(self, kind: int, body: bytes, what: str) -> list[bytes]:
        seq = self._send(kind, NLM_F_DUMP, body)
        return [reply for _, reply in self._replies(seq, what)]

    # --- the requests a job makes -----------------------------------------------------------

    def add_link(self, ifname: str, *attrs: bytes, flags: int = 0) -> bool:
        """Create a link unless one of that name exists; True when created."""
        body = ifinfo(flags=flags, change=flags) + string(IFLA_IFNAME, ifname) + b"".join(attrs)
        try:
            self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create link {ifname}")
        except RtnlError as exc:
            if exc.errno != errno.EEXIST:
                raise
            return False
        return True

    def set_link(self, ifname: str, *attrs: bytes, up: bool = False, down: bool = False) -> None:
        """Change a link found by name (set master, alias, state: `up`, or `down`)."""
        flags = IFF_UP if up else 0
        change = IFF_UP if up or down else 0
        body = ifinfo(flags=flags, change=change) + string(IFLA_IFNAME, ifname) + b"".join(attrs)
        self.request(RTM_SETLINK, 0, body, f"set link {ifname}")

    def bridge_vlans(
        self, index: int, vlans: Iterable[tuple[int, int]], delete: bool = False, own: bool = False
    ) -> None:
        """Add (or delete) VLANs of a bridge port, or of the bridge itself (`own`), each
        (vid, BRIDGE_VLAN_INFO_* flags), in one request ("bridge vlan add/del")."""
        infos = [
            attr(IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", flags, vid)) for vid, flags in vlans
        ]
        flags = [attr(IFLA_BRIDGE_FLAGS, struct.pack("=H", BRIDGE_FLAGS_SELF))] if own else []
        body = _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + nested(IFLA_AF_SPEC, *flags, *infos)
        kind = RTM_DELLINK if delete else RTM_SETLINK
        verb = "delete" if delete else "add"
        try:
            self.request(kind, 0, body, f"{verb} VLANs of link {index}")
        except RtnlError as exc:
            if not (delete and exc.errno == errno.ENOENT):  # deleted before
                raise

    def link_index(self, ifname: str) -> int | None:
        try:
            replies = self.request(
                RTM_GETLINK, 0, ifinfo() + string(IFLA_IFNAME, ifname), f"find link {ifname}"
            )
        except RtnlError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return parse_link(replies[0]).index if replies else None

    def links(self) -> list[Link]:
        return [parse_link(body) for body in self.dump(RTM_GETLINK, ifinfo(), "list links")]

    def addresses(self, family: int = socket.AF_INET) -> list[Address]:
        body = _IFADDR.pack(family, 0, 0, 0, 0)
        return [parse_address(reply) for reply in self.dump(RTM_GETADDR, body, "list addresses")]

    def routes(self, family: int = socket.AF_INET) -> list[Route]:
        """Every route of `family` (AF_INET or AF_INET6) of every table."""
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        return [parse_route(reply) for reply in self.dump(RTM_GETROUTE, body, "list routes")]

    def add_address(self, index: int, address: str, prefixlen: int) -> bool:
        """Add an IPv4 or IPv6 address (IPv6 without duplicate address detection: a lab's
        addresses are planned unique); False when the link already has it."""
        if ":" in address:
            raw = socket.inet_pton(socket.AF_INET6, address)
            body = _IFADDR.pack(socket.AF_INET6, prefixlen, IFA_F_NODAD, 0, index) + attr(
                IFA_ADDRESS, raw
            )
        else:
            raw = socket.inet_aton(address)
            body = (
                _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index)
                + attr(IFA_LOCAL, raw)
                + attr(IFA_ADDRESS, raw)
            )
        try:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"add address {address}")
        except RtnlError as exc:
            if exc.errno != errno.EEXIST:
                raise
            return False
        return True

    def add_route(self, dst: str, prefixlen: int, gateway: str) -> bool:
        """Add an IPv4 or IPv6 unicast route in the main table; False when it exists."""
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        body = _RTMSG.pack(family, prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0)
        if prefixlen:
            body += attr(RTA_DST, socket.inet_pton(family, dst))
        body += attr(RTA_GATEWAY, socket.inet_pton(family, gateway))
        try:
            self.request(
                RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"add route {dst} via {gateway}"
            )
        except RtnlError as exc:
            if exc.errno != errno.EEXIST:
                raise
            return False
        return True

    def delete_group(self, group: int) -> bool:
        """Delete every link of the group in one request; False when it had none."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + u32(IFLA_GROUP, group), f"delete group {group}")
        except RtnlError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT):
                raise
            return False
        return True

    def add_altname(self, index: int, altname: str) -> None:
        """`altname` an alternative name of link `index` ("ip link property add"); done
        when the link has it already, refused when another link has that name."""
        names = string(IFLA_ALT_IFNAME, altname)
        body = ifinfo(index=index) + nested(IFLA_PROP_LIST | NLA_F_NESTED, names)
        try:
            self.request(RTM_NEWLINKPROP, NLM_F_EXCL | NLM_F_CREATE, body, f"name link {altname}")
        except RtnlError as exc:
            if exc.errno != errno.EEXIST:
                raise
            if self._named(altname) != index:
                raise RtnlError(
                    exc.errno, f"{altname} is already the name of another host interface"
                ) from None

    def _named(self, name: str) -> int | None:
        """The index of the link that has `name` as an alternative name."""
        body = ifinfo() + string(IFLA_ALT_IFNAME, name)
        try:
            replies = self.request(RTM_GETLINK, 0, body, f"find link {name}")
        except RtnlError:
            return None
        return parse_link(replies[0]).index if replies else None

    def delete_link(self, index: int) -> bool:
        try:
            self.request(RTM_DELLINK, 0, ifinfo(index=index), f"delete link {index}")
        except RtnlError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT):
                raise
            return False
        return True


def link_info(kind: str, *data: bytes) -> bytes:
    """IFLA_LINKINFO for a link of `kind` with its kind-specific attributes."""
    parts = [string(IFLA_INFO_KIND, kind)]
    if data:
        parts.append(nested(IFLA_INFO_DATA, *data))
    return nested(IFLA_LINKINFO, *parts)


def vxlan_remote(address: str) -> bytes:
    """The remote endpoint of a VXLAN device, in the attribute of its family."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    return attr(IFLA_VXLAN_GROUP6 if ":" in address else IFLA_VXLAN_GROUP, packed)


def veth_peer(ifname: str, netns_fd: int, mtu: int, address: str | None) -> bytes:
    """VETH_INFO_PEER: the peer end, created directly inside the namespace of `netns_fd`."""
    attrs: Iterable[bytes] = [
        string(IFLA_IFNAME, ifname),
        u32(IFLA_NET_NS_FD, netns_fd),
        u32(IFLA_MTU, mtu),
    ]
    if address:
        attrs = [*attrs, attr(IFLA_ADDRESS, mac(address))]
    return attr(VETH_INFO_PEER, ifinfo() + b"".join(attrs))
