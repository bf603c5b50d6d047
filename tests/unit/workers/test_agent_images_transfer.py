"""What crosses the broker for a host's images: an uploaded archive read back from a real
Redis (its chunks counted, hashed and bounded, into a file only root reads), and registry
logins sealed under the host's key (opened only with it)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from labplan import envelope
from labplan.envelope import Refused
from labplan.messages import image_upload_key
from tests.unit.workers.signing import KEY, OTHER_KEY
from workers.images.transfer import (
    LoginsError,
    UploadError,
    Uploads,
    leftovers,
    open_logins,
    upload_max,
)

UPLOAD = "t" * 40


@pytest.fixture(scope="module")
def redis_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A redis-server of the test module's own on a unix socket (no port)."""
    directory = tmp_path_factory.mktemp("redis")
    socket = directory / "redis.sock"
    argv = ["redis-server", "--port", "0", "--unixsocket", str(socket)]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(socket))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def pushed(redis_client: redis.Redis) -> Iterator[tuple[redis.Redis, bytes, int]]:
    """An archive of 1 MiB and a bit, pushed in 64 KiB chunks (not a multiple of the
    agent's batch)."""
    data = os.urandom((1 << 20) + 12345)
    pieces = [data[i : i + (64 << 10)] for i in range(0, len(data), 64 << 10)]
    key = image_upload_key(UPLOAD)
    redis_client.delete(key)
    redis_client.rpush(key, *pieces)
    yield redis_client, data, len(pieces)
    redis_client.delete(key)


def test_an_upload_is_read_whole_into_a_file_only_root_reads(
    pushed: tuple[redis.Redis, bytes, int], tmp_path: Path
) -> None:
    client, data, chunks = pushed
    directory = tmp_path / "uploads"

    path = Uploads(client).fetch(UPLOAD, chunks, hashlib.sha256(data).hexdigest(), directory)

    assert path.parent == directory and path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o600 and directory.stat().st_mode & 0o777 == 0o700
    assert client.llen(image_upload_key(UPLOAD)) == chunks  # the caller discards it


def test_an_upload_over_the_bound_is_refused_and_leaves_no_file(
    pushed: tuple[redis.Redis, bytes, int], tmp_path: Path
) -> None:
    client, data, chunks = pushed

    with pytest.raises(UploadError, match="larger than LABMGR_IMAGE_UPLOAD_MAX"):
        Uploads(client, max_bytes=1 << 20).fetch(
            UPLOAD, chunks, hashlib.sha256(data).hexdigest(), tmp_path
        )
    assert list(tmp_path.iterdir()) == []


def test_a_chunk_changed_on_the_broker_is_refused_by_its_hash(
    pushed: tuple[redis.Redis, bytes, int], tmp_path: Path
) -> None:
    client, data, chunks = pushed
    client.lset(image_upload_key(UPLOAD), 3, "x" * (64 << 10))

    with pytest.raises(UploadError, match=r"^sha256: the archive's is"):
        Uploads(client).fetch(UPLOAD, chunks, hashlib.sha256(data).hexdigest(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_chunk_added_on_the_broker_is_refused_by_the_count(
    pushed: tuple[redis.Redis, bytes, int], tmp_path: Path
) -> None:
    client, data, chunks = pushed
    client.rpush(image_upload_key(UPLOAD), b"more")

    with pytest.raises(UploadError, match=f"^chunks: the upload has {chunks + 1} chunks"):
        Uploads(client).fetch(UPLOAD, chunks, hashlib.sha256(data).hexdigest(), tmp_path)


def test_discard_drops_the_chunks(pushed: tuple[redis.Redis, bytes, int]) -> None:
    client, _, _ = pushed

    Uploads(client).discard(UPLOAD)

    assert client.exists(image_upload_key(UPLOAD)) == 0


def test_an_unreachable_broker_is_said_so(tmp_path: Path) -> None:
    client = redis.Redis(unix_socket_path=str(tmp_path / "none.sock"))

    with pytest.raises(UploadError, match=r"^upload: the broker is unreachable"):
        Uploads(client).fetch(UPLOAD, 1, "0" * 64, tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 2 << 30), ("512M", 512 << 20), ("4096", 4096)]
)
def test_the_upload_bound_is_read_from_the_environment(value: str | None, expected: int) -> None:
    environ = {} if value is None else {"LABMGR_IMAGE_UPLOAD_MAX": value}
    assert upload_max(environ) == expected


@pytest.mark.parametrize("value", ["lots", "0", "-1G"])
def test_a_bad_upload_bound_names_the_variable(value: str) -> None:
    with pytest.raises(UploadError, match=r"^LABMGR_IMAGE_UPLOAD_MAX: "):
        upload_max({"LABMGR_IMAGE_UPLOAD_MAX": value})


def test_leftovers_of_a_crash_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "upload-abc.tar").write_bytes(b"half")
    (tmp_path / "keep.txt").write_bytes(b"not an upload")

    assert [p.name for p in leftovers(tmp_path)] == ["upload-abc.tar"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# --- sealed logins -----------------------------------------------------------------------

LOGIN = {"registry": "docker.io", "username": "alice", "password": "pw"}


def test_sealed_logins_open_with_the_host_key() -> None:
    sealed = envelope.seal_secret(KEY, json.dumps([LOGIN]).encode())

    assert open_logins(KEY, sealed) == [LOGIN]
    assert open_logins(KEY, "") == [] and open_logins(KEY, None) == []


def test_sealed_logins_do_not_open_with_another_key_nor_without_one() -> None:
    sealed = envelope.seal_secret(KEY, json.dumps([LOGIN]).encode())

    with pytest.raises(Refused):
        open_logins(OTHER_KEY, sealed)
    with pytest.raises(Refused):
        open_logins(None, sealed)
    with pytest.raises(Refused):
        open_logins(KEY, "zz" + sealed[2:])
    with pytest.raises(Refused):
        open_logins(KEY, 42)


def test_logins_in_clear_are_refused() -> None:
    with pytest.raises(Refused):
        open_logins(KEY, json.dumps([LOGIN]))


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"registry": "r"}', b'[["docker.io", "alice", "pw"]]', b'[{"registry": ""}]'],
)
def test_sealed_logins_that_are_not_logins_name_the_field(content: bytes) -> None:
    with pytest.raises(LoginsError, match=r"^registries"):
        open_logins(KEY, envelope.seal_secret(KEY, content))
