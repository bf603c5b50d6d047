"""nftables for labs: one `ip` table per deployment, named by its token, so teardown is one
table delete; and one `inet labmgr` table of the agent's own for what is host-wide
(VXLAN from registered peers only, the forwarding guard), rewritten whole each time.

A deployment's table keeps the host out of reach from each lab bridge (input), NATs a
routed bridge out of the host but never into another lab, the host's own networks or
link-local addresses, and isolates the rest (forward). Rulesets go to `nft -f -` on
stdin, never through a shell. Every name in them was made from ids and every address was
validated when the plan was decoded. `nft` runs in the namespace of the calling thread,
which is the job's root namespace.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path

from workers.driver import HostRules
from workers.kernel import rtnl
from workers.kernel.names import check_kernel_name

NFT = "nft"
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE = (NFNL_SUBSYS_NFTABLES << 8) | 1
NFT_MSG_DELTABLE = (NFNL_SUBSYS_NFTABLES << 8) | 2
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFTA_TABLE_NAME = 1
NFPROTO_INET = 1
HOST_TABLE = "labmgr"  # not "lm...": never taken for a deployment's table by the sweep
LAB_LINKS = "lm*"
LINK_LOCAL = IPv4Network("169.254.0.0/16")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")  # the calling thread's namespace's


class FirewallError(Exception):
    pass


def _nft(ruleset: str, *args: str) -> str:
    done = subprocess.run(
        [NFT, *args, "-f", "-"] if ruleset else [NFT, *args],
        input=ruleset.encode(),
        capture_output=True,
        check=False,
        timeout=30,
    )
    if done.returncode != 0:
        raise FirewallError(done.stderr.decode(errors="replace").strip())
    return done.stdout.decode()


def _ident(name: str) -> str:
    """A kernel name as an nft identifier, which may not hold "-"."""
    return name.replace("-", "_")


class Firewall:
    def __init__(self, token: str) -> None:
        self.table = check_kernel_name(token)

    def _chains(self, chains: Iterable[tuple[str, str, list[str]]]) -> None:
        """Create (or empty) base chains and fill them, in one nft transaction."""
        lines = [f"add table ip {self.table}"]
        for chain, hook, rules in chains:
            lines += [
                f"add chain ip {self.table} {chain} {{ {hook}; policy accept; }}",
                f"flush chain ip {self.table} {chain}",
                *(f"add rule ip {self.table} {chain} {rule}" for rule in rules),
            ]
        _nft("\n".join(lines) + "\n")

    def guard(self, bridge: str, gateway: str | None) -> None:
        """Nothing from the bridge reaches the host but echo requests to its gateway and
        replies to what the host sent; without a gateway here, nothing is routed through
        it either."""
        check_kernel_name(bridge)
        accept = [f'iifname "{bridge}" ct state established,related accept']
        if gateway is not None:
            address = IPv4Address(gateway)
            accept.append(f'iifname "{bridge}" ip daddr {address} icmp type echo-request accept')
        chains = [
            (
                f"in_{_ident(bridge)}",
                "type filter hook input priority filter",
                [*accept, f'iifname "{bridge}" drop'],
            )
        ]
        if gateway is None:
            chains.append(_isolation(bridge))
        self._chains(chains)

    def set_nat(self, bridge: str, subnet: str, local: Iterable[IPv4Network]) -> None:
        """Masquerade the lab's own subnet leaving through anything but its bridge; keep it
        from being routed into other labmgr links (Docker's isolation), into `local` (the
        networks the host is on) or to link-local addresses (cloud metadata); let nothing
        in but replies."""
        check_kernel_name(bridge)
        net = IPv4Network(subnet)
        closed = ", ".join(str(n) for n in sorted({*local, LINK_LOCAL}))
        self._chains(
            [
                (
                    f"nat_{_ident(bridge)}",
                    "type nat hook postrouting priority srcnat",
                    [f'ip saddr {net} oifname != "{bridge}" masquerade'],
                ),
                (
                    f"fwd_{_ident(bridge)}",
                    "type filter hook forward priority filter",
                    [
                        f'iifname "{bridge}" oifname != "{bridge}" oifname "{LAB_LINKS}" drop',
                        f'iifname "{bridge}" oifname != "{bridge}" ip daddr {{ {closed} }} drop',
                        f'oifname "{bridge}" iifname != "{bridge}"'
                        " ct state != { established, related } drop",
                    ],
                ),
            ]
        )

    def isolate(self, bridge: str, subnet: str) -> None:
        """An internal network: nothing is routed into or out of the bridge; its nodes
        still reach each other (bridged, not routed) and the gateway address."""
        check_kernel_name(bridge)
        IPv4Network(subnet)
        self._chains([_isolation(bridge)])

    def remove(self) -> bool:
        """Delete the deployment's table; False when there was none."""
        return delete_table(self.table)


def _isolation(bridge: str) -> tuple[str, str, list[str]]:
    return (
        f"iso_{_ident(bridge)}",
        "type filter hook forward priority filter",
        # Both names are checked: with br_netfilter, frames bridged between two ports
        # of this bridge pass the forward hook too, in and out through the bridge.
        [
            f'iifname "{bridge}" oifname != "{bridge}" drop',
            f'oifname "{bridge}" iifname != "{bridge}" drop',
        ],
    )


def set_host_rules(rules: HostRules) -> None:
    """Rewrite the agent's host-wide table to say `rules`, in one transaction; remove it
    when they are empty."""
    if rules.empty:
        delete_table(HOST_TABLE, NFPROTO_INET)
        return
    _nft(host_ruleset(rules))


def host_ruleset(rules: HostRules) -> str:
    """The host-wide table as an nft script replacing whatever it held."""
    peers = [ip_address(p) for p in rules.vxlan_peers]
    body = []
    if rules.vxlan_ports:
        v4 = ", ".join(str(p) for p in peers if p.version == 4)
        v6 = ", ".join(str(p) for p in peers if p.version == 6)
        ports = ", ".join(str(p) for p in sorted(set(rules.vxlan_ports)))
        body += [
            f"  set vxlan_peers4 {{ type ipv4_addr; {f'elements = {{ {v4} }}' if v4 else ''} }}",
            f"  set vxlan_peers6 {{ type ipv6_addr; {f'elements = {{ {v6} }}' if v6 else ''} }}",
            f"  set vxlan_ports {{ type inet_service; elements = {{ {ports} }} }}",
            # Only the peers' VXLAN reaches a VXLAN device: a frame from anyone else would
            # land in a lab's layer 2 segment.
            "  chain vxlan_in { type filter hook input priority filter; policy accept;",
            "    meta nfproto ipv4 udp dport @vxlan_ports ip saddr != @vxlan_peers4 drop",
            "    meta nfproto ipv6 udp dport @vxlan_ports ip6 saddr != @vxlan_peers6 drop",
            "  }",
            # ... and no lab sends VXLAN to a peer: NATed, it would come from this host.
            "  chain vxlan_out { type filter hook forward priority filter; policy accept;",
            f'    iifname "{LAB_LINKS}" ip daddr @vxlan_peers4 udp dport @vxlan_ports drop',
            f'    iifname "{LAB_LINKS}" ip6 daddr @vxlan_peers6 udp dport @vxlan_ports drop',
            "  }",
        ]
    if rules.forward_guard:
        body += [
            # labmgr turned forwarding on for its labs: the host routes nothing else.
            "  chain forward_guard { type filter hook forward priority filter; policy accept;",
            "    meta nfproto != ipv4 accept",
            f'    iifname "{LAB_LINKS}" accept',
            f'    oifname "{LAB_LINKS}" ct state established,related accept',
            "    drop",
            "  }",
        ]
    return "\n".join(
        [
            f"add table inet {HOST_TABLE}",
            f"delete table inet {HOST_TABLE}",
            f"table inet {HOST_TABLE} {{",
            *body,
            "}",
            "",
        ]
    )


def host_ruleset_now() -> str:
    """The host-wide table as the kernel holds it ("" when there is none)."""
    if not table_exists(HOST_TABLE, NFPROTO_INET):
        return ""
    return _nft("", "list", "table", "inet", HOST_TABLE)


def ip_forward() -> bool:
    return IP_FORWARD.read_text().strip() != "0"


def set_ip_forward(on: bool) -> None:
    IP_FORWARD.write_text("1" if on else "0")


def tables(prefix: str) -> list[str]:
    """Names of `ip` tables starting with `prefix` in the current namespace."""
    try:
        out = _nft("", "list", "tables", "ip")
    except (FirewallError, FileNotFoundError):
        return []
    names = [line.split()[-1] for line in out.splitlines() if line.startswith("table ip ")]
    return sorted(n for n in names if n.startswith(prefix))


def delete_table(name: str, family: int = socket.AF_INET) -> bool:
    """Delete an nftables table over netlink, in a batch of its own (a teardown costs no
    `nft` process); False when there was none."""
    batch = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(NFNL_SUBSYS_NFTABLES))
    body = struct.pack("=BBH", family, 0, 0) + rtnl.string(NFTA_TABLE_NAME, name)
    request = rtnl.NLM_F_REQUEST
    messages = [
        _message(NFNL_MSG_BATCH_BEGIN, request, 1, batch),
        _message(NFT_MSG_DELTABLE, request | rtnl.NLM_F_ACK, 2, body),
        _message(NFNL_MSG_BATCH_END, request, 3, batch),
    ]
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.send(b"".join(messages))
            data = sock.recv(rtnl.RECV_SIZE)
    except OSError:
        return _delete_with_nft(name, family)
    for kind, flags, seq, reply in rtnl.messages(data):
        if kind == rtnl.NLMSG_ERROR and seq == 2:
            code, text = rtnl.error_of(flags, reply)
            if code in (0, errno.ENOENT):
                return code == 0
            raise FirewallError(f"delete table {name}: {os.strerror(code)} {text}".strip())
    return _delete_with_nft(name, family)


def _message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def _delete_with_nft(name: str, family: int) -> bool:
    words = {socket.AF_INET: "ip", NFPROTO_INET: "inet"}
    try:
        _nft("", "delete", "table", words[family], name)
    except FirewallError as exc:
        if "No such file" in str(exc):
            return False
        raise
    return True


def table_exists(name: str, family: int = socket.AF_INET) -> bool:
    """Whether an nftables table of that name and family exists, asked over netlink (one
    request, where `nft` would be a process). True when the kernel cannot say."""
    body = struct.pack("=BBH", family, 0, 0) + rtnl.string(NFTA_TABLE_NAME, name)
    header = struct.pack("=IHHII", 16 + len(body), NFT_MSG_GETTABLE, rtnl.NLM_F_REQUEST, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.send(header + body)
            data = sock.recv(rtnl.RECV_SIZE)
    except OSError:
        return True
    for kind, flags, _, reply in rtnl.messages(data):
        if kind == rtnl.NLMSG_ERROR:
            code, _ = rtnl.error_of(flags, reply)
            return code != errno.ENOENT
    return True
