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
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
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
LINK_LOCAL6 = IPv6Network("fe80::/10")
INPUT = "type filter hook input priority filter"
FORWARD = "type filter hook forward priority filter"
# The calling thread's namespace's switches.
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
IPV6_CONF = Path("/proc/sys/net/ipv6/conf")


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

    def _chains(self, chains: Iterable[tuple[str, str, list[str]]], family: str = "ip") -> None:
        """Create (or empty) base chains of the `family` table ("ip" or "ip6") and fill
        them, in one nft transaction."""
        lines = [f"add table {family} {self.table}"]
        for chain, hook, rules in chains:
            lines += [
                f"add chain {family} {self.table} {chain} {{ {hook}; policy accept; }}",
                f"flush chain {family} {self.table} {chain}",
                *(f"add rule {family} {self.table} {chain} {rule}" for rule in rules),
            ]
        _nft("\n".join(lines) + "\n")

    def guard(self, bridge: str, gateway: str | None, gateway6: str | None = None) -> None:
        """Nothing from the bridge reaches the host but echo requests to its gateway and
        replies to what the host sent; without a gateway here, nothing is routed through
        it either. With a gateway6, the same in IPv6 (and the neighbour discovery that
        finds the gateway6); without one the bridge's IPv6 is off and needs no rule."""
        check_kernel_name(bridge)
        accept = [f'iifname "{bridge}" ct state established,related accept']
        if gateway is not None:
            address = IPv4Address(gateway)
            accept.append(f'iifname "{bridge}" ip daddr {address} icmp type echo-request accept')
        chain = f"in_{_ident(bridge)}"
        chains = [(chain, INPUT, [*accept, f'iifname "{bridge}" drop'])]
        if gateway is None:
            chains.append(_isolation(bridge))
        self._chains(chains)
        if gateway6 is not None:
            address6 = IPv6Address(gateway6)
            rules = [
                accept[0],
                f'iifname "{bridge}" ip6 daddr {address6} icmpv6 type echo-request accept',
                f'iifname "{bridge}" icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }}'
                " accept",
                f'iifname "{bridge}" drop',
            ]
            self._chains([(chain, INPUT, rules)], "ip6")

    def set_nat(self, bridge: str, subnet: str, local: Iterable[IPv4Network | IPv6Network]) -> None:
        """Masquerade the lab's own subnet (IPv4, or IPv6 for a gateway6) leaving through
        anything but its bridge; keep it from being routed into other labmgr links
        (Docker's isolation), into `local` (the networks the host is on) or to link-local
        addresses (cloud metadata); let nothing in but replies."""
        check_kernel_name(bridge)
        net = ip_network(subnet)
        family = "ip6" if net.version == 6 else "ip"  # also the word of its addresses
        link_local = LINK_LOCAL6 if net.version == 6 else LINK_LOCAL
        closed = ", ".join(str(n) for n in sorted({*local, link_local}))
        self._chains(
            [
                (
                    f"nat_{_ident(bridge)}",
                    "type nat hook postrouting priority srcnat",
                    [f'{family} saddr {net} oifname != "{bridge}" masquerade'],
                ),
                (
                    f"fwd_{_ident(bridge)}",
                    FORWARD,
                    [
                        f'iifname "{bridge}" oifname != "{bridge}" oifname "{LAB_LINKS}" drop',
                        f'iifname "{bridge}" oifname != "{bridge}" {family} daddr {{ {closed} }}'
                        " drop",
                        f'oifname "{bridge}" iifname != "{bridge}"'
                        " ct state != { established, related } drop",
                    ],
                ),
            ],
            family,
        )

    def isolate(self, bridge: str, subnet: str) -> None:
        """An internal network: nothing is routed into or out of the bridge, in the
        family of `subnet`; its nodes still reach each other (bridged, not routed) and
        the gateway address."""
        check_kernel_name(bridge)
        family = "ip6" if ip_network(subnet).version == 6 else "ip"
        self._chains([_isolation(bridge)], family)

    def remove(self) -> bool:
        """Delete the deployment's tables (IPv4 and IPv6); False when there was none."""
        removed = delete_table(self.table)
        return delete_table(self.table, socket.AF_INET6) or removed


def _isolation(bridge: str) -> tuple[str, str, list[str]]:
    return (
        f"iso_{_ident(bridge)}",
        FORWARD,
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
    for chain, proto, on in (
        ("forward_guard", "ipv4", rules.forward_guard),
        ("forward_guard6", "ipv6", rules.forward_guard6),
    ):
        if on:
            body += [
                # labmgr turned forwarding on for its labs: the host routes nothing else.
                f"  chain {chain} {{ type filter hook forward priority filter; policy accept;",
                f"    meta nfproto != {proto} accept",
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


def _forwarding(version: int) -> Path:
    return IP_FORWARD if version == 4 else IPV6_CONF / "all" / "forwarding"


def ip_forward(version: int = 4) -> bool:
    return _forwarding(version).read_text().strip() != "0"


def set_ip_forward(on: bool, version: int = 4) -> None:
    _forwarding(version).write_text("1" if on else "0")


def links_forwarding6() -> dict[str, bool]:
    """Each link's own IPv6 forwarding switch, but labmgr's ("lm*"): the kernel sets
    them all with `all`, and a link that forwards takes no router advertisements."""
    if not IPV6_CONF.is_dir():
        return {}
    found = {}
    for path in sorted(IPV6_CONF.iterdir()):
        if path.name in ("all", "default") or path.name.startswith(LAB_LINKS.rstrip("*")):
            continue
        try:
            found[path.name] = (path / "forwarding").read_text().strip() != "0"
        except OSError:
            continue  # gone meanwhile
    return found


def set_links_forwarding6(links: dict[str, bool]) -> None:
    """Set links' own IPv6 forwarding switch back (the links still there)."""
    for name, on in links.items():
        if "/" in name or name in ("", ".", "..", "all", "default") or len(name) > 15:
            continue
        try:
            (IPV6_CONF / name / "forwarding").write_text("1" if on else "0")
        except OSError:
            continue


def tables(prefix: str) -> list[str]:
    """Names of `ip` and `ip6` tables starting with `prefix` in the current namespace."""
    names = set()
    for family in ("ip", "ip6"):
        try:
            out = _nft("", "list", "tables", family)
        except (FirewallError, FileNotFoundError):
            continue
        head = f"table {family} "
        names |= {line.split()[-1] for line in out.splitlines() if line.startswith(head)}
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
    words = {socket.AF_INET: "ip", socket.AF_INET6: "ip6", NFPROTO_INET: "inet"}
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
