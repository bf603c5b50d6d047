"""What a running node's network looks like from outside: each interface's name, MAC and
IPv4 addresses, read over rtnetlink in the network namespace of the node's init.

The netlink socket is opened after entering `/proc/<pid>/ns/net` on the calling thread
(a socket stays bound to the namespace it was made in), then the thread goes back: no
helper process, no dependency on the namespace having a name (host-network nodes too).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from workers.kernel import syscalls

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETLINK, RTM_GETADDR = 18, 22
IFLA_ADDRESS, IFLA_IFNAME = 1, 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
_HDR = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")


@dataclass(frozen=True)
class ObservedInterface:
    ifname: str
    mac: str
    addresses: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"ifname": self.ifname, "mac": self.mac, "addresses": list(self.addresses)}


@contextlib.contextmanager
def _entered(pid: int) -> Iterator[None]:
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        there = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(there, syscalls.CLONE_NEWNET)
            try:
                yield
            finally:
                syscalls.setns(here, syscalls.CLONE_NEWNET)
        finally:
            os.close(there)
    finally:
        os.close(here)


def interfaces_of(pid: int) -> list[ObservedInterface]:
    """The interfaces of the network namespace process `pid` is in, sorted by name;
    empty when the process is gone."""
    try:
        with _entered(pid):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    with sock:
        sock.bind((0, 0))
        links = _dump(sock, RTM_GETLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0))
        addrs = _dump(sock, RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0))
    addresses: dict[int, list[str]] = {}
    for body in addrs:
        _, prefixlen, _, _, index = _IFADDR.unpack_from(body)
        attrs = _attrs(body, _IFADDR.size)
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is not None:
            addresses.setdefault(index, []).append(f"{socket.inet_ntoa(raw)}/{prefixlen}")
    found = []
    for body in links:
        index = _IFINFO.unpack_from(body)[2]
        attrs = _attrs(body, _IFINFO.size)
        name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
        mac = ":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b""))
        found.append(ObservedInterface(name, mac, tuple(addresses.get(index, ()))))
    return sorted(found, key=lambda i: i.ifname)


def _dump(sock: socket.socket, kind: int, body: bytes) -> list[bytes]:
    sock.send(_HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
    replies: list[bytes] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _HDR.size <= len(data):
            length, msg_type, _, _, _ = _HDR.unpack_from(data, offset)
            if msg_type == NLMSG_DONE:
                return replies
            if msg_type == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", data, offset + _HDR.size)
                raise OSError(-code, os.strerror(-code))
            replies.append(data[offset + _HDR.size : offset + length])
            offset += (length + 3) & ~3


def _attrs(body: bytes, offset: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + _ATTR.size <= len(body):
        length, kind = _ATTR.unpack_from(body, offset)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = body[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found
