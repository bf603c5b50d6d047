"""The agent's settings, read from the environment with safe defaults."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

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
