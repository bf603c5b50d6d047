"""Errors a user can cause in a service, carrying the HTTP status and field paths they map to.

Services raise these; the API and the admin turn them into a response or a message, so
the behaviour is the same from every interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ApplicationError(Exception):
    """A refused request: `message` is a sentence, `errors` maps field paths to messages."""

    status = 400

    def __init__(self, message: str, errors: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}

    @classmethod
    def for_field(cls, field: str, message: str) -> ApplicationError:
        return cls(message, {field: [message]})


class NotAllowed(ApplicationError):
    """The user may see the object but not do this to it."""

    status = 403


class Conflict(ApplicationError):
    """The request contradicts the object's current state (e.g. an illegal transition)."""

    status = 409
