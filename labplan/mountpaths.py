"""The paths a mount takes (labfile 2 `mounts`): checked by the validator on a labfile and
by an agent on a plan, with the same words.
"""

from __future__ import annotations

import re

# What the node's own tree is built of: its /proc, /sys and /dev, and the /etc that holds
# the lab's /etc/hosts and the node's /etc/hostname.
SYSTEM_PATHS = ("/proc", "/sys", "/dev")
RESERVED_PATHS = ("/", "/etc", "/etc/hosts", "/etc/hostname")
# The agent passes both paths of a mount as one `kind:mode:source:path` argument.
_ODD = re.compile(r"[\x00-\x1f\x7f:]")


def path_problem(path: str) -> str | None:
    """Why an absolute path is not one a mount takes, or None."""
    if _ODD.search(path):
        return f"{path!r} has a ':' or a control character, which a mount's path cannot have"
    parts = path.split("/")[1:]
    if path != "/" and ("" in parts or "." in parts):
        normal = "/" + "/".join(p for p in parts if p not in ("", "."))
        return f"{path} is not written plainly: write {normal}"
    return None


def target_problem(path: str) -> str | None:
    """Why a node's path cannot take a mount, or None."""
    if (problem := path_problem(path)) is not None:
        return problem
    if path in RESERVED_PATHS:
        return f"{path} is the node's own (its tree, or the lab's /etc/hosts): mount below it"
    for system in SYSTEM_PATHS:
        if path == system or path.startswith(system + "/"):
            return f"{path} is in the node's {system}, which the kernel fills: mount elsewhere"
    return None
