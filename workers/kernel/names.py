"""The last check before a name reaches the kernel: labmgr's own names only."""

from __future__ import annotations

import re

PREFIX = "lm"
IFNAMSIZ = 15
_NAME = re.compile(r"lm[0-9a-z]+(-[0-9a-z]+)?")


def check_kernel_name(name: str) -> str:
    """Return `name` if it is a labmgr kernel name ("lm1", "lm1-b0"), at most 15 bytes."""
    if len(name) > IFNAMSIZ or not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a labmgr kernel name")
    return name


def owned_by(name: str, token: str) -> bool:
    """Whether a flat kernel name (netns, link) belongs to the deployment `token`."""
    return name.startswith(token + "-")
