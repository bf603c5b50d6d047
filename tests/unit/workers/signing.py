"""Signed messages as the control plane sends them, for the agent's tests."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from labplan import envelope
from workers.keys import Signer, write_key

KEY = bytes(range(32))  # the host's key
OTHER_KEY = bytes([7] * 32)  # another install's, or a forger's guess


def host_signer(data_dir: Path, host: str = "local", key: bytes = KEY) -> Signer:
    write_key(data_dir / "host.key", key)
    return Signer(data_dir / "host.key", host)


def signed(
    task: str,
    kwargs: dict[str, Any],
    *,
    key: bytes = KEY,
    host: str = "local",
    id: str | None = None,
    issued: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(the Celery task's `self`, its keyword arguments) for a message the control plane
    signed: call a registered task with them."""
    task_id = id or uuid.uuid4().hex
    sealed = envelope.seal(
        key,
        task=task,
        host=host,
        id=task_id,
        issued=time.time() if issued is None else issued,
        kwargs=kwargs,
    )
    return SimpleNamespace(request=SimpleNamespace(id=task_id)), {envelope.FIELD: sealed}


def opened(
    signed_kwargs: dict[str, Any], task: str, *, key: bytes = KEY, host: str = "local"
) -> Any:
    """A report (its keyword arguments) or an answer (its Celery result) the agent sent,
    opened as the control plane opens it (Refused if not)."""
    sealed = signed_kwargs.get(envelope.FIELD, signed_kwargs)
    return envelope.open_(sealed, [key], task=task, host=host, now=time.time(), max_age=60).kwargs


class FakeApp:
    """Records the tasks bound to it, and what is sent through it."""

    def __init__(self) -> None:
        self.tasks: dict[str, Any] = {}
        self.sent: list[tuple[str, dict[str, Any], str, str]] = []

    def task(self, *, name: str, **options: Any) -> Any:
        def bind(function: Any) -> Any:
            self.tasks[name] = function
            return function

        return bind

    def send_task(
        self, name: str, *, kwargs: dict[str, Any], task_id: str, queue: str, **_: Any
    ) -> None:
        self.sent.append((name, kwargs, task_id, queue))
