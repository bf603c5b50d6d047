"""Registry logins as they travel: only those of the registries a pull names, sealed under
the receiving host's key (labplan.envelope.seal_secret), never in clear on the broker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labmgr.hosts.models import Host
from labmgr.images.models import RegistryLogin
from labplan import envelope
from labplan.messages import RegistryLogin as RegistryLoginArgs

PULL_OP = "pull_image"  # a plan's op pulling an image (labplan.ops.PullImage)
DOCKER_HUB = "docker.io"
# A registry as a reference names it: a host name or address, an optional port.
REGISTRY_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]{1,5})?"
)


def registry_of(ref: str) -> str:
    """The registry a reference pulls from, as Docker reads it: its first component when
    that holds a "." or a ":" or is "localhost", else Docker Hub."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return DOCKER_HUB if first in ("index.docker.io", "registry-1.docker.io") else first
    return DOCKER_HUB


def plan_pulls(plan: Mapping[str, Any], slug: str) -> list[str]:
    """The references host `slug`'s part of the plan (codec form) pulls."""
    refs = []
    for part in plan.get("hosts") or []:
        if isinstance(part, Mapping) and part.get("host") == slug:
            for op in part.get("ops") or []:
                if not isinstance(op, Mapping) or op.get("op") != PULL_OP:
                    continue
                if isinstance(ref := op.get("ref"), str) and ref:
                    refs.append(ref)
    return refs


def logins_sealed(*, host: Host, refs: Iterable[str]) -> str:
    """The logins of the registries `refs` pull from, as a JSON list of RegistryLogin sealed
    under the host's key; "" when there are none (or the host has no key to seal with)."""
    registries = sorted({registry_of(ref) for ref in refs})
    if not registries or not host.key:
        return ""
    logins: list[RegistryLoginArgs] = [
        {"registry": login.registry, "username": login.username, "password": login.password}
        for login in RegistryLogin.objects.filter(registry__in=registries).order_by("registry")
    ]
    if not logins:
        return ""
    text = json.dumps(logins, separators=(",", ":"), ensure_ascii=False)
    return envelope.seal_secret(bytes.fromhex(host.key), text.encode())


def apply_logins(*, plan: Mapping[str, Any], hosts: Sequence[Host]) -> dict[str, str]:
    """Each host's sealed logins for the pulls of its part of the plan ("" for none)."""
    return {host.slug: logins_sealed(host=host, refs=plan_pulls(plan, host.slug)) for host in hosts}
