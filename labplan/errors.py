"""Errors a user can cause in a labfile or a plan, each naming the field it is about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class FieldError:
    """One problem: `path` is the dotted field path ("nodes.web.limits.memory", "" for the
    whole document) and `message` a sentence a student understands."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class LabfileError(Exception):
    """A labfile (or a plan decoded at the privilege boundary) is invalid.

    Carries every problem found, not just the first, in document order.
    """

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def as_dict(self) -> dict[str, list[str]]:
        """Errors grouped by field path, the shape REST clients receive."""
        grouped: dict[str, list[str]] = {}
        for error in self.errors:
            grouped.setdefault(error.path or "labfile", []).append(error.message)
        return grouped
