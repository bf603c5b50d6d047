"""The agent's settings, read from the environment with safe defaults."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from labplan.units import parse_size

DEFAULT_DATA_DIR = "/var/lib/labmgr-agent"
DEFAULT_CGROUP_PARENT = "labmgr"


def data_dir() -> Path:
    """Where the agent keeps its journal, node files, logs and the built init."""
    return Path(os.environ.get("LABMGR_AGENT_DATA_DIR") or DEFAULT_DATA_DIR)


def host_name() -> str:
    """The name plans use for this host."""
    return os.environ.get("LABMGR_AGENT_HOST") or "local"


def underlay() -> str | None:
    """The IPv4 address the other hosts reach this one at for VXLAN overlay networks
    (LABMGR_AGENT_UNDERLAY); None when unset: it is never guessed from an interface, and
    a lab with an overlay across hosts is refused until it is known."""
    value = (os.environ.get("LABMGR_AGENT_UNDERLAY") or "").strip()
    if not value:
        return None
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise ValueError(f"LABMGR_AGENT_UNDERLAY={value!r} is not an IPv4 address") from exc
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise ValueError(f"LABMGR_AGENT_UNDERLAY={value!r} cannot be reached from another host")
    return str(address)


def root_netns() -> str | None:
    """The network namespace standing for the host (LABMGR_AGENT_ROOT_NETNS, a path such
    as /run/netns/NAME); None: the agent's own. Lets one machine run several agents, each
    a simulated host with its own host links (the system tests do)."""
    return os.environ.get("LABMGR_AGENT_ROOT_NETNS") or None


def cgroup_parent() -> str:
    """The cgroup (directly below each hierarchy's root) holding every cgroup of the
    agent's labs (LABMGR_AGENT_CGROUP_PARENT, default `labmgr`). Agents sharing one
    kernel, each a simulated host, need one each: a destroy kills its deployment's cgroup,
    which must hold that host's nodes only. A name starting with `labmgr`."""
    value = os.environ.get("LABMGR_AGENT_CGROUP_PARENT") or DEFAULT_CGROUP_PARENT
    if not re.fullmatch(r"labmgr[a-z0-9_-]{0,40}", value):
        raise ValueError(
            f"LABMGR_AGENT_CGROUP_PARENT={value!r}: a name starting with 'labmgr' "
            "(letters, digits, '-', '_')"
        )
    return value


RESERVE_DEFAULTS = {"cpus": "10%", "memory": "512M", "pids": "1024"}


@dataclass(frozen=True)
class Part:
    """An amount kept back of one kind: `value` of its unit (CPUs, bytes, processes), or
    `value` percent of the machine's when `percent`."""

    value: float
    percent: bool = False

    def of(self, total: float) -> float:
        return total * self.value / 100 if self.percent else self.value


@dataclass(frozen=True)
class Reserve:
    """What the agent keeps of the machine for the host itself (the agent, the control
    plane if it runs here, sshd, ...): labs together never get it."""

    cpus: Part
    memory: Part
    pids: Part


def reserve() -> Reserve:
    """LABMGR_AGENT_RESERVE_CPUS (default 10%), _MEMORY (512M) and _PIDS (1024): a number
    (a size like 512M for memory) or a percentage of the machine's. Configured on the
    agent, never taken from a message: the control plane may ask for less, not for the
    reserve itself."""
    parts: dict[str, Part] = {}
    for kind, default in RESERVE_DEFAULTS.items():
        name = f"LABMGR_AGENT_RESERVE_{kind.upper()}"
        text = (os.environ.get(name) or default).strip()
        try:
            if text.endswith("%"):
                part = Part(float(text[:-1]), percent=True)
                valid = 0 <= part.value < 100
            else:
                part = Part(float(parse_size(text)) if kind == "memory" else float(text))
                valid = part.value >= 0
        except ValueError:
            valid = False
        if not valid or not math.isfinite(part.value):
            raise ValueError(
                f"{name}={text!r}: a number"
                + (", a size like 512M" if kind == "memory" else "")
                + " or a percentage below 100% of the machine's"
            )
        parts[kind] = part
    return Reserve(**parts)
