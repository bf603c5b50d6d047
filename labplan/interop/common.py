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

    def sysctls(self, value: object, path: str) -> dict[str, str]:
        """A node's sysctls, a mapping or a list of KEY=VALUE as both tools write them:
        the net.* ones (its own network namespace's) kept, the others noted."""
        pairs: list[tuple[str, object]] = []
        if isinstance(value, Mapping):
            pairs = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            pairs = [(k, v) for k, _, v in (item.partition("=") for item in value)]
        else:
            self.error(path, "sysctls is a mapping or a list of KEY=VALUE")
            return {}
        kept: dict[str, str] = {}
        for key, setting in pairs:
            if not key.startswith("net."):
                self.note(f"{path}.{key}", "not carried over: only net.* sysctls are a node's own")
            elif isinstance(setting, bool) or not isinstance(setting, str | int | float):
                self.error(f"{path}.{key}", f"{setting!r} is not a sysctl value")
            else:
                kept[key] = str(setting)
        return kept
