"""What every importer and exporter returns: the result and its notes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
