"""What every importer and exporter returns: the result and its notes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labplan.errors import FieldError


@dataclass(frozen=True)
class Note:
    """One thing an import or export changed or dropped: `path` names the field of the
    file it is about (the source's on import, the labfile's on export)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class Imported:
    tree: dict[str, Any]  # a labfile tree, for labplan.labfile.validate
    notes: tuple[Note, ...]
    source: str  # the format it came from, one of FORMATS


@dataclass(frozen=True)
class Exported:
    text: str
    notes: tuple[Note, ...]


class Importer:
    """What every importer keeps while it walks a file: its refusals (all reported at
    once) and notes, each under the source file's own path."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.notes: list[Note] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path.lstrip("."), message))

    def note(self, path: str, message: str) -> None:
        self.notes.append(Note(path, message))

    def mapping(self, value: object, path: str, what: str) -> Mapping[str, Any]:
        """`value` as a mapping (None is an empty one); refused under `path` if not."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"{what} must be a mapping of keys")
            return {}
        return value
