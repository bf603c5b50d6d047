"""Other tools' lab files to and from the labfile: containerlab topologies
(`*.clab.yml`) and compose files (the Compose Specification).

Importers turn a file into a labfile tree, never into rows or a plan: what they make is
validated by `labplan.labfile.validate` like any labfile, so every rule holds for an
imported lab. Exporters start from a validated `Labfile`. Both report, as `notes`, what
they changed or could not carry over, each naming the field of the file it is about.

    detect(tree)                  -> "labfile" | "containerlab" | "compose"
    detect_text(text)             -> the same, of a file's text
    to_labfile(text, fmt=None)    -> Imported(tree, notes, source)
    from_labfile(lab, fmt)        -> Exported(text, notes)

A refusal is a `LabfileError` whose paths are the source file's own
(`topology.nodes.r1.kind`, `services.web.build`), all problems at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from labplan.errors import FieldError, LabfileError
from labplan.interop.common import Exported, Imported
from labplan.model import Labfile
from labplan.reader import read

LABFILE, CONTAINERLAB, COMPOSE = "labfile", "containerlab", "compose"
FORMATS = (LABFILE, CONTAINERLAB, COMPOSE)
# What a user may write for a format (`?format=clab`), and the names it is known by.
ALIASES = {
    "labfile": LABFILE,
    "containerlab": CONTAINERLAB,
    "clab": CONTAINERLAB,
    "compose": COMPOSE,
    "docker-compose": COMPOSE,
}


def format_name(value: str) -> str:
    """The format `value` names; ValueError naming the known ones otherwise."""
    try:
        return ALIASES[value.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(ALIASES))
        raise ValueError(f"unknown format {value!r}; use one of {known}") from None


def detect(tree: object) -> str:
    """Which tool's file `tree` is, by its top-level keys: `topology` is containerlab's,
    `services` a compose file's, anything else is read as a labfile."""
    if isinstance(tree, Mapping):
        if "labfile" not in tree and "topology" in tree:
            return CONTAINERLAB
        if "labfile" not in tree and "services" in tree:
            return COMPOSE
    return LABFILE


def detect_text(text: str | bytes) -> str:
    """`detect` of a file's text; a text that does not read is taken for a labfile (whose
    own check then says what is wrong with it)."""
    try:
        return detect(read(text, aliases=True))
    except (LabfileError, ValueError, yaml.YAMLError):
        return LABFILE


def to_labfile(text: str | bytes, fmt: str | None = None) -> Imported:
    """The labfile tree of `text`, a labfile, containerlab topology or compose file
    (`fmt` one of FORMATS, or None to tell by content). A labfile is read as it is;
    the other two may use YAML anchors, aliases and merge keys."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    tree = read(text, aliases=fmt != LABFILE)
    kind = fmt or detect(tree)
    if kind == LABFILE:
        if fmt is None:  # read once more without aliases: a labfile never has them
            tree = read(text)
        return Imported(dict(tree) if isinstance(tree, dict) else {}, (), LABFILE)
    if not isinstance(tree, dict):  # pragma: no cover - read() refuses non-mappings
        raise LabfileError([FieldError("", "the document is not a mapping of keys")])
    if kind == CONTAINERLAB:
        from labplan.interop import clab

        return clab.to_labfile(tree)
    from labplan.interop import compose

    return compose.to_labfile(tree)


def from_labfile(lab: Labfile, fmt: str) -> Exported:
    """`lab` as a file of format `fmt` (containerlab or compose), with notes naming what
    that tool's file cannot hold."""
    if fmt == CONTAINERLAB:
        from labplan.interop import clab_export

        return clab_export.from_labfile(lab)
    if fmt == COMPOSE:
        from labplan.interop import compose_export

        return compose_export.from_labfile(lab)
    raise ValueError(f"cannot export to {fmt!r}; use containerlab or compose")
