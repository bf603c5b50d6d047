"""The agent's settings, read from the environment with safe defaults."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

DEFAULT_DATA_DIR = "/var/lib/labmgr-agent"


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
