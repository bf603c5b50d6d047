"""Validation rules about volumes and mounts (labfile 2): each mount names one source (a
volume the lab declares, or a host path), on a normalised path of the node that no
other of its mounts and none of the node's own system mounts take; a volume is a
directory of one host. Used by `labplan.rules`, on the tree `labplan.structure`
converted (INVALID where a value already failed, which is then skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labplan.bounds import DEFAULT_VOLUME_SIZE
from labplan.model import Mount, Volume
from labplan.mountpaths import path_problem, target_problem
from labplan.structure import INVALID, Checker


def check_mounts(checker: Checker, raw_volumes: object, raw_nodes: Mapping[str, Any]) -> None:
    """Every node's mounts against the lab's volumes."""
    volumes = raw_volumes if isinstance(raw_volumes, Mapping) else None
    placed: dict[str, tuple[str, str]] = {}  # volume -> (node, host) of its first placed node
    for name, raw in raw_nodes.items():
        mounts = raw.get("mounts", ()) if isinstance(raw, Mapping) else INVALID
        if not isinstance(mounts, list | tuple):
            continue
        if mounts and _namespace_off(raw):
            checker.error(
                f"nodes.{name}.mounts",
                f"{name} has no mount namespace of its own (namespaces.mnt: false): it sees "
                "the host's mounts and can have none of its own",
            )
        seen: dict[str, int] = {}
        for index, mount in enumerate(mounts):
            if not isinstance(mount, Mapping):
                continue
            path = f"nodes.{name}.mounts.{index}"
            _check_source(checker, path, mount, volumes)
            target = mount.get("path")
            if not isinstance(target, str):
                continue
            if (problem := target_problem(target)) is not None:
                checker.error(f"{path}.path", problem)
            elif (other := seen.setdefault(target, index)) != index:
                checker.error(f"{path}.path", f"mount {other} of {name} is already on {target}")
            volume, host = mount.get("volume"), raw.get("host")
            if isinstance(volume, str) and isinstance(host, str):
                first = placed.setdefault(volume, (name, host))
                if first[1] != host:
                    checker.error(
                        f"{path}.volume",
                        f"volume {volume} is on host {first[1]} with {first[0]}: a volume is "
                        f"a directory of one host, so {name} cannot have it on {host}",
                    )


def _namespace_off(raw: Mapping[str, Any]) -> bool:
    namespaces = raw.get("namespaces")
    return isinstance(namespaces, Mapping) and namespaces.get("mnt") is False


def _check_source(
    checker: Checker, path: str, mount: Mapping[str, Any], volumes: Mapping[str, Any] | None
) -> None:
    given = [key for key in ("volume", "host") if key in mount]
    if not given:
        checker.error(
            path, "a mount needs a source: volume (a volume of the lab) or host (a host path)"
        )
    elif len(given) == 2:
        checker.error(path, "a mount has one source: a volume or a host path, not both")
    volume, host = mount.get("volume"), mount.get("host")
    if isinstance(volume, str) and volumes is not None and volume not in volumes:
        known = ", ".join(sorted(volumes)) or "none"
        checker.error(
            f"{path}.volume",
            f"the lab has no volume {volume!r} (volumes: {known}); declare it under volumes",
        )
    if isinstance(host, str) and (problem := path_problem(host)) is not None:
        checker.error(f"{path}.host", problem)


def volumes_of(raw_volumes: object) -> tuple[Volume, ...]:
    """The lab's volumes, sorted by name, from a checked tree."""
    entries = raw_volumes if isinstance(raw_volumes, Mapping) else {}
    return tuple(
        Volume(name, int(spec.get("size", DEFAULT_VOLUME_SIZE)))
        for name, spec in sorted(entries.items())
        if isinstance(spec, Mapping)
    )


def mounts_of(raw: Mapping[str, Any]) -> tuple[Mount, ...]:
    """A checked node's mounts, in the labfile's order."""
    return tuple(
        Mount(
            path=mount["path"],
            volume=mount.get("volume"),
            host=mount.get("host"),
            readonly=bool(mount.get("readonly", False)),
        )
        for mount in raw.get("mounts", ())
    )
