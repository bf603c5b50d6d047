"""The agent's host key and the messages it signs and checks with it (labplan.envelope).

The key lives in `<data>/host.key` (LABMGR_AGENT_KEY_FILE), 64 hex digits, mode 0600 in
a 0700 directory: an admin registers the host in labmgr (`manage.py host_register NAME`
or the admin panel), which makes the key, and installs it here with
`python -m workers key set` (`make run` does both for the local host). The agent acts on
no message its key did not sign for this host, and signs everything it reports.

A rotation arrives as `labmgr.agent.rekey`, signed with the current key and carrying the
new one wrapped under it. The agent writes the new key, answers `labmgr.control.rekeyed`
signed with it, and still accepts the old key for messages the control plane signed
before the rotation, for as long as those stay fresh.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labplan import envelope
from labplan.envelope import Opened, Refused

Clock = Callable[[], float]


class NoKey(Exception):
    """The agent has no usable key: it must not serve."""


def key_path(data_dir: Path) -> Path:
    return Path(os.environ.get("LABMGR_AGENT_KEY_FILE") or data_dir / "host.key")


def read_key(path: Path) -> bytes:
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise NoKey(f"no host key at {path}") from exc
    try:
        return envelope.parse_key(text)
    except ValueError as exc:
        raise NoKey(f"{path}: {exc}") from exc


def write_key(path: Path, key: bytes) -> None:
    """Write the key as 64 hex digits, 0600, atomically (a crash leaves the old or the
    new key, never half of one); its directory is made 0700 if missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        scratch.unlink()
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(key.hex() + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(scratch, path)


def new_id() -> str:
    return uuid.uuid4().hex


class Signer:
    """Seals what the agent of `host` sends and opens what it receives."""

    def __init__(self, path: Path, host: str, clock: Clock = time.time) -> None:
        self.path = path
        self.host = host
        self.clock = clock
        self._key = read_key(path)
        self._previous: bytes | None = None
        self._previous_before = 0.0  # the old key signs only messages issued before this
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        with self._lock:
            return self._key

    def seal(self, task: str, kwargs: Mapping[str, Any], id: str | None = None) -> dict[str, str]:
        return envelope.seal(
            self.key,
            task=task,
            host=self.host,
            id=id or new_id(),
            issued=self.clock(),
            kwargs=kwargs,
        )

    def open(
        self, task: str, signed: object, id: str | None, *, max_age: float | None = None
    ) -> Opened:
        """The verified message `task` for this host, or Refused."""
        with self._lock:
            keys = [self._key] + ([self._previous] if self._previous is not None else [])
            before = self._previous_before
        opened = envelope.open_(
            signed,
            keys,
            task=task,
            host=self.host,
            now=self.clock(),
            max_age=envelope.fresh_for(task) if max_age is None else max_age,
            id=id,
        )
        if opened.key == 1 and opened.issued >= before:
            raise Refused("the message is signed with a key this host no longer uses")
        return opened

    def rekey(self, opened: Opened) -> None:
        """Take the new key a verified `labmgr.agent.rekey` carries."""
        if opened.key != 0:
            raise Refused("a rotation must be signed with the current key")
        wrapped = opened.kwargs.get("key")
        if not isinstance(wrapped, str):
            raise Refused("the rotation carries no key")
        with self._lock:
            try:
                new = envelope.unwrap_key(self._key, wrapped, opened.id)
            except ValueError as exc:
                raise Refused(f"the rotation's key is unreadable: {exc}") from exc
            write_key(self.path, new)
            self._previous, self._key = self._key, new
            self._previous_before = opened.issued
