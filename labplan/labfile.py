"""The labfile API: text or a parsed tree in, a normalised `Labfile` out, and back.

`load` reads YAML or JSON, `validate` checks every rule of docs/labfile.md and applies every
default (reporting all problems at once, in document order) and refuses a lab past the
bounds of `labplan.bounds`, `dump`/`dumps` export the normalised document and
`admin_requirements` lists what only an admin may deploy.
"""

from __future__ import annotations

from labplan import bounds
from labplan.drivers import DRIVERS
from labplan.errors import FieldError, LabfileError
from labplan.export import dump, dumps
from labplan.fields import LABFILE
from labplan.model import HOST_PARENT_PREFIX, NAMESPACE_KINDS, Labfile
from labplan.reader import read
from labplan.rules import build_lab
from labplan.structure import Checker, document_version

__all__ = ["admin_requirements", "dump", "dumps", "load", "validate"]


def load(text: str | bytes, *, fmt: str | None = None) -> Labfile:
    """Parse and validate a labfile; `fmt` is "yaml", "json" or None to detect it."""
    return validate(read(text, fmt=fmt))


def validate(data: object) -> Labfile:
    """The normalised lab described by an already parsed tree; raises LabfileError
    listing every problem found."""
    checker = Checker(document_version(data))
    tree = checker.check_object(LABFILE, data, "")
    lab = build_lab(checker, tree) if isinstance(tree, dict) else None
    if checker.count or lab is None:
        raise LabfileError(checker.errors)
    if errors := bounds.lab_errors(lab):
        raise LabfileError(errors)
    return lab


# The types of link that reach out of the lab, which only an admin may make, and why.
PORT_REACHES = {
    "host": "its other end is in the host's own network namespace",
    "vxlan": "it tunnels out of the host, to an endpoint outside the lab",
}


def admin_requirements(lab: Labfile) -> list[FieldError]:
    """The fields of `lab` that reach the host, which only an admin may deploy, in
    document order: a network of a driver only admins may use (host), a host interface
    as parent, a directory as root filesystem, a namespace turned off, a privileged
    node, a host path mounted into a node, a link into the host's namespace or out of it."""
    needs: list[FieldError] = []
    for network in lab.networks:
        if reason := DRIVERS[network.driver].admin_only:
            needs.append(FieldError(f"networks.{network.name}.driver", reason))
        if network.parent is not None and network.parent.startswith(HOST_PARENT_PREFIX):
            needs.append(
                FieldError(
                    f"networks.{network.name}.parent",
                    "only an admin may use a host interface as parent",
                )
            )
    for node in lab.nodes:
        path = f"nodes.{node.name}"
        if node.rootfs is not None and node.rootfs != "host":
            needs.append(
                FieldError(
                    f"{path}.rootfs",
                    f"only an admin may use a directory of the host ({node.rootfs}) as a "
                    'node\'s root filesystem; use rootfs: "host"',
                )
            )
        for kind in NAMESPACE_KINDS:
            # A privileged node has no user namespace unless it asks: said once, below.
            if not getattr(node.namespaces, kind) and not (kind == "user" and node.privileged):
                needs.append(
                    FieldError(
                        f"{path}.namespaces.{kind}",
                        f"only an admin may turn the {kind} namespace off",
                    )
                )
        if node.privileged:
            needs.append(
                FieldError(f"{path}.privileged", "only an admin may run a privileged node")
            )
        for index, mount in enumerate(node.mounts):
            if mount.host is not None:
                needs.append(
                    FieldError(
                        f"{path}.mounts.{index}.host",
                        f"only an admin may mount a path of the host ({mount.host}) into a "
                        "node; use a volume of the lab",
                    )
                )
    for port in lab.ports:
        if port.type in PORT_REACHES:
            needs.append(
                FieldError(
                    f"links.{port.index}.type",
                    f"only an admin may make a {port.type} link: {PORT_REACHES[port.type]}",
                )
            )
        elif port.host_ifname is not None:
            needs.append(
                FieldError(
                    f"links.{port.index}.host_ifname",
                    "only an admin may name an interface of the host; leave it out, and "
                    "labmgr names the bridge's side itself",
                )
            )
    return needs
