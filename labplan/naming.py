"""Kernel object names, generated from ids only (never from user text).

A deployment's token is "lm" + base36(deployment id), e.g. "lm1". Flat kernel names
(network namespaces, links) are the token, a "-", a kind letter and base36 indexes:
netns "lm1-n0", bridge "lm1-b0", host-side veth "lm1-v0x0", vxlan "lm1-x0". The "-"
ends the token: base36 digits include the kind letters, so without it deployment 1's
netns for node 828 ("lm1" "n" "n0") would be deployment 59's netns for node 0 ("lm1n"
"n" "0"), and a prefix match on "lm1" would claim deployment 59's links. With it, a name
belongs to a deployment exactly when it starts with that deployment's `name_prefix`.

Indexes are positions in the lab's sorted node / network tuples, and a veth's second
index is the attachment's position in its node's network list. Every name fits IFNAMSIZ-1
(15 bytes) for deployment ids up to 2**31 and labs of 1,000 nodes and 1,000 networks.
"""

from __future__ import annotations

import functools
import re

PREFIX = "lm"
MAX_DEPLOYMENT = 2**31
MAX_INDEX = 999  # a labfile holds at most 1,000 nodes and 1,000 networks
IFNAMSIZ = 15  # usable bytes of a Linux interface name
GROUP_BASE = 0x10000
ALIAS_PREFIX = "labmgr:"
CGROUP_ROOT = "labmgr"  # the per-host parent every deployment's cgroups live under

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN_RE = re.compile(r"lm[1-9a-z][0-9a-z]{0,5}")
# Any labmgr flat name, whatever its deployment: used to refuse another deployment's names.
LABMGR_NAME_RE = re.compile(r"lm[1-9a-z][0-9a-z]{0,5}-.*")


def base36(number: int) -> str:
    """`number` in lower-case base 36, without leading zeros ("0" for 0)."""
    if number < 0:
        raise ValueError(f"base36 of a negative number: {number}")
    digits = []
    while True:
        number, digit = divmod(number, 36)
        digits.append(_DIGITS[digit])
        if number == 0:
            return "".join(reversed(digits))


def _check_deployment(deployment: int) -> None:
    if not 1 <= deployment <= MAX_DEPLOYMENT:
        raise ValueError(f"deployment id must be in 1..{MAX_DEPLOYMENT}, not {deployment}")


def _check_index(index: int) -> str:
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index must be in 0..{MAX_INDEX}, not {index}")
    return base36(index)


@functools.lru_cache(maxsize=256)  # every name of a deployment starts with it
def deployment_token(deployment: int) -> str:
    """The deployment's token, e.g. "lm1": the ifalias suffix and its cgroup's name."""
    _check_deployment(deployment)
    return PREFIX + base36(deployment)


def deployment_from_token(token: str) -> int | None:
    """The deployment id a token names, or None when `token` is not a valid token."""
    if not TOKEN_RE.fullmatch(token):
        return None
    deployment = int(token[len(PREFIX) :], 36)
    return deployment if deployment <= MAX_DEPLOYMENT else None


def name_prefix(deployment: int) -> str:
    """What every flat kernel name of the deployment starts with, e.g. "lm1-"."""
    return deployment_token(deployment) + "-"


def netns_name(deployment: int, node_index: int) -> str:
    return f"{name_prefix(deployment)}n{_check_index(node_index)}"


def bridge_name(deployment: int, network_index: int) -> str:
    return f"{name_prefix(deployment)}b{_check_index(network_index)}"


def veth_name(deployment: int, node_index: int, attachment_index: int) -> str:
    """The host-side end of the veth joining a node's attachment to its bridge."""
    node = _check_index(node_index)
    return f"{name_prefix(deployment)}v{node}x{_check_index(attachment_index)}"


def host_link_name(deployment: int, node_index: int, number: int) -> str:
    """The host-side end of a node's `number`th link into the host's namespace: counted
    down from the last attachment index, which a node's networks never reach."""
    return veth_name(deployment, node_index, MAX_INDEX - number)


def vxlan_name(deployment: int, network_index: int) -> str:
    return f"{name_prefix(deployment)}x{_check_index(network_index)}"


def deployment_cgroup(deployment: int) -> str:
    """The deployment's cgroup, relative to the host's labmgr parent, e.g. "lm1"."""
    return deployment_token(deployment)


def node_cgroup(deployment: int, node_index: int) -> str:
    """A node's cgroup, relative to the host's labmgr parent, e.g. "lm1/n0"."""
    return f"{deployment_cgroup(deployment)}/n{_check_index(node_index)}"


def link_group(deployment: int) -> int:
    """The link group of every host-side link: teardown is one group delete."""
    _check_deployment(deployment)
    return GROUP_BASE + deployment


def link_alias(deployment: int) -> str:
    """The ifalias of every host-side link, naming its deployment, e.g. "labmgr:lm1"."""
    return ALIAS_PREFIX + deployment_token(deployment)
