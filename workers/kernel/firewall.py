"""NAT and isolation of lab bridges with nftables: one `ip` table per deployment, named
by its token, so teardown is one table delete.

Rulesets go to `nft -f -` on stdin, never through a shell. Every name in them was made
from ids and every subnet was validated when the plan was decoded. `nft` runs in the
namespace of the calling thread, which is the job's root namespace.
"""

from __future__ import annotations

import errno
import socket
import struct
import subprocess
from ipaddress import IPv4Network
from pathlib import Path

from workers.kernel import rtnl
from workers.kernel.names import check_kernel_name

NFT = "nft"
NETLINK_NETFILTER = 12
NFT_MSG_GETTABLE = (10 << 8) | 1  # NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE
NFTA_TABLE_NAME = 1


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

    def _chain(self, chain: str, hook: str, rules: list[str]) -> None:
        """Create (or empty) a base chain and fill it, in one nft transaction."""
        lines = [
            f"add table ip {self.table}",
            f"add chain ip {self.table} {chain} {{ {hook}; policy accept; }}",
            f"flush chain ip {self.table} {chain}",
            *(f"add rule ip {self.table} {chain} {rule}" for rule in rules),
        ]
        _nft("\n".join(lines) + "\n")

    def set_nat(self, bridge: str, subnet: str) -> None:
        """Masquerade the lab's own subnet leaving through anything but its bridge, and
        keep it from being routed into other labmgr bridges (Docker's isolation)."""
        check_kernel_name(bridge)
        net = IPv4Network(subnet)
        self._chain(
            f"nat_{_ident(bridge)}",
            "type nat hook postrouting priority srcnat",
            [f'ip saddr {net} oifname != "{bridge}" masquerade'],
        )
        self._chain(
            f"fwd_{_ident(bridge)}",
            "type filter hook forward priority filter",
            [f'iifname "{bridge}" oifname != "{bridge}" oifname "lm*" drop'],
        )
        # Like Docker: NAT out needs forwarding in the host's namespace.
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    def isolate(self, bridge: str, subnet: str) -> None:
        """An internal network: nothing is routed into or out of the bridge; its nodes
        still reach each other (bridged, not routed) and the gateway address."""
        check_kernel_name(bridge)
        IPv4Network(subnet)
        self._chain(
            f"iso_{_ident(bridge)}",
            "type filter hook forward priority filter",
            # Both names are checked: with br_netfilter, frames bridged between two ports
            # of this bridge pass the forward hook too, in and out through the bridge.
            [
                f'iifname "{bridge}" oifname != "{bridge}" drop',
                f'oifname "{bridge}" iifname != "{bridge}" drop',
            ],
        )

    def remove(self) -> bool:
        """Delete the deployment's table; False when there was none."""
        if not table_exists(self.table):
            return False  # most labs have no table: no `nft` process to learn that
        try:
            _nft("", "delete", "table", "ip", self.table)
        except FirewallError as exc:
            if "No such file" in str(exc):
                return False
            raise
        return True


def tables(prefix: str) -> list[str]:
    """Names of `ip` tables starting with `prefix` in the current namespace."""
    try:
        out = _nft("", "list", "tables", "ip")
    except (FirewallError, FileNotFoundError):
        return []
    names = [line.split()[-1] for line in out.splitlines() if line.startswith("table ip ")]
    return sorted(n for n in names if n.startswith(prefix))


def table_exists(name: str) -> bool:
    """Whether an `ip` nftables table of that name exists, asked over netlink (one
    request, where `nft` would be a process). True when the kernel cannot say."""
    body = struct.pack("=BBH", socket.AF_INET, 0, 0) + rtnl.string(NFTA_TABLE_NAME, name)
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
