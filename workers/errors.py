"""How a job of the agent fails in a way its user is told of: the message of each says
why, in words meant for the person who deployed."""

from __future__ import annotations


class ApplyError(Exception):
    """The apply failed (and was rolled back); the message says why."""


class RefusedError(ApplyError):
    """The plan needs features this host lacks; nothing was created."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__("this host lacks: " + ", ".join(missing))


class ConflictRefusedError(RefusedError):
    """The subnets the plan routes on this host clash with the host's own routes or
    addresses, or with another deployment's; nothing was created."""

    def __init__(self, conflicts: list[str]) -> None:
        self.missing: list[str] = []
        self.conflicts = conflicts
        ApplyError.__init__(self, "this host cannot route " + "; ".join(conflicts))


class MoveRefusedError(ApplyError):
    """A running deployment was asked to go into another reservation's cgroup (or out of
    its own); nothing was changed."""
