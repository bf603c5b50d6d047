"""What the control plane hands an agent for its image store beside a message's plain
arguments: the registry logins, sealed under the host's key (`open_logins`), and an
archive an admin uploaded, read back from the chunks pushed on
`labmgr:image:<upload>:archive` (messages.image_upload_key) into a file only root reads,
for the store to load: their number and the whole's SHA-256 as the signed message says,
its size within LABMGR_IMAGE_UPLOAD_MAX, or nothing is kept."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import redis

from labplan.envelope import STREAM_ID_RE, Refused, open_secret
from labplan.messages import RegistryLogin, image_upload_key
from labplan.units import UnitError, parse_size

UPLOAD_MAX = 2 << 30  # bytes of an archive, unless LABMGR_IMAGE_UPLOAD_MAX says otherwise
UPLOAD_MAX_VARIABLE = "LABMGR_IMAGE_UPLOAD_MAX"
BATCH = 8  # chunks read from Redis at a time: memory stays a few chunks whatever the size
PREFIX = "upload-"  # the files an upload is read into, in the agent's uploads directory
SHA256_RE = re.compile(r"[0-9a-f]{64}")
LOGIN_FIELDS = ("registry", "username", "password")


class LoginsError(ValueError):
    """The sealed registry logins opened, but are not a list of logins."""


def open_logins(key: bytes | None, sealed: object) -> list[RegistryLogin]:
    """The registry logins a message carries sealed under the host `key` (absent or "":
    none). Refused when they do not open with the key, as a forged message is;
    LoginsError when what opens is not a JSON list of {registry, username, password}."""
    if sealed is None or sealed == "":
        return []
    if not isinstance(sealed, str):
        raise Refused("registries: the sealed logins are not text")
    if key is None:
        raise Refused("registries: this agent holds no host key to open them with")
    try:
        data = json.loads(open_secret(key, sealed))
    except ValueError:
        raise LoginsError("registries: the sealed logins are not JSON") from None
    if not isinstance(data, list):
        raise LoginsError("registries: the sealed logins are not a list")
    logins: list[RegistryLogin] = []
    for i, item in enumerate(data):
        if (
            not isinstance(item, dict)
            or sorted(item) != sorted(LOGIN_FIELDS)
            or not all(isinstance(item[name], str) and item[name] for name in LOGIN_FIELDS)
        ):
            raise LoginsError(
                f"registries[{i}]: a login is {{registry, username, password}}, each a "
                "non-empty string"
            )
        logins.append(
            {
                "registry": item["registry"],
                "username": item["username"],
                "password": item["password"],
            }
        )
    return logins


class UploadError(Exception):
    """The upload cannot be read as the message describes it; the message names the
    field that is wrong."""


def upload_max(environ: Mapping[str, str] = os.environ) -> int:
    """The largest archive the agent reads (LABMGR_IMAGE_UPLOAD_MAX, a size like 2G)."""
    text = environ.get(UPLOAD_MAX_VARIABLE, "").strip()
    if not text:
        return UPLOAD_MAX
    try:
        value = parse_size(text)
    except UnitError as exc:
        raise UploadError(f"{UPLOAD_MAX_VARIABLE}: {exc}") from None
    if value <= 0:
        raise UploadError(f"{UPLOAD_MAX_VARIABLE}: {text!r} is not a positive size")
    return value


class Uploads:
    """The uploaded archives on the broker's Redis."""

    def __init__(self, client: redis.Redis, max_bytes: int | None = None) -> None:
        self.client = client
        self.max_bytes = max_bytes

    def fetch(self, upload: object, chunks: object, sha256: object, directory: Path) -> Path:
        """The archive in a new 0600 file under `directory` (0700), after checking it
        against the message; UploadError, and no file, otherwise. The caller removes the
        file, and the chunks (`discard`)."""
        if not isinstance(upload, str) or not STREAM_ID_RE.fullmatch(upload):
            raise UploadError("upload: not an unguessable upload id")
        if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 1:
            raise UploadError(f"chunks: {chunks!r} is not a positive number of chunks")
        if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
            raise UploadError("sha256: not the hex SHA-256 of an archive (64 lower-case digits)")
        limit = self.max_bytes if self.max_bytes is not None else upload_max()
        key = image_upload_key(upload)
        try:
            found = int(self.client.llen(key))
        except redis.RedisError as exc:
            raise UploadError(f"upload: the broker is unreachable: {exc}") from None
        if found == 0:
            raise UploadError(f"upload: no archive {upload} on the broker (it expired?)")
        if found != chunks:
            raise UploadError(f"chunks: the upload has {found} chunks, the message says {chunks}")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        fd, name = tempfile.mkstemp(prefix=PREFIX, suffix=".tar", dir=directory)  # 0600
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = self._copy(key, chunks, limit, out)
            if digest != sha256:
                raise UploadError(f"sha256: the archive's is {digest}, the message says {sha256}")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _copy(self, key: str, chunks: int, limit: int, out: BinaryIO) -> str:
        whole = hashlib.sha256()
        size = 0
        for first in range(0, chunks, BATCH):
            last = min(first + BATCH, chunks) - 1
            try:
                batch = self.client.lrange(key, first, last)
            except redis.RedisError as exc:
                raise UploadError(f"upload: the broker is unreachable: {exc}") from None
            if len(batch) != last - first + 1:
                raise UploadError(f"chunks: the upload lost chunks while being read ({first}..)")
            for chunk in batch:
                if not isinstance(chunk, bytes):  # a client decoding replies would be a bug
                    raise TypeError("the Redis client must not decode replies")
                size += len(chunk)
                if size > limit:
                    raise UploadError(
                        f"upload: the archive is larger than {UPLOAD_MAX_VARIABLE} ({limit} bytes)"
                    )
                whole.update(chunk)
                out.write(chunk)
        return whole.hexdigest()

    def discard(self, upload: str) -> None:
        """Drop the upload's chunks (read, refused or not wanted), if the broker is there."""
        if isinstance(upload, str) and STREAM_ID_RE.fullmatch(upload):
            with contextlib.suppress(redis.RedisError):
                self.client.delete(image_upload_key(upload))


def leftovers(directory: Path) -> list[Path]:
    """Remove the files of uploads a crash left half-read or unloaded; what was removed."""
    removed = []
    if directory.is_dir():
        for path in directory.glob(PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
