"""An image archive (`docker save`, OCI) an admin uploads for a host to load: started with
its size, sent in chunks of at most 1 MiB (the request body limit) onto the Redis list
`image_upload_key(key)`, then handed to the host's agent (`labmgr.agent.image_load`),
which reads the chunks back, checks their number and SHA-256, and answers with an images
report."""

from __future__ import annotations

import hashlib
import re
import secrets

import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from labmgr.deployments.placement import host_require_online
from labmgr.errors import ApplicationError, Conflict
from labmgr.hosts.models import Host
from labmgr.images import dispatch
from labmgr.images.models import ImageUpload, UploadState
from labmgr.images.services import (
    Dispatched,
    image_action_sent,
    image_admin_check,
    image_reference,
)
from labplan import messages

CHUNK_MAX = 1024 * 1024  # bytes of one chunk: the request body limit
UPLOAD_TTL = 6 * 3600  # seconds an upload's chunks wait on Redis after the last one came
READ_BATCH = 16  # chunks read back at once when hashing what arrived
SHA256_RE = re.compile(r"[0-9a-f]{64}")
DOING = "upload images"


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def image_upload_start(
    *, host: Host, actor: User, size: object, sha256: object = None, name: object = None
) -> ImageUpload:
    """A new upload of an archive of `size` bytes for the host to load, tagged `name` (a
    reference) when given; `sha256`, when given, is checked against what arrives."""
    image_admin_check(actor=actor, doing=DOING)
    host_require_online(host)
    limit = int(settings.LABMGR_IMAGE_UPLOAD_MAX)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ApplicationError.for_field("size", "size is the archive's length in bytes.")
    if size > limit:
        raise ApplicationError.for_field(
            "size", f"The archive ({size} bytes) is larger than the limit of {limit} bytes."
        )
    if sha256 not in (None, "") and (
        not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256)
    ):
        raise ApplicationError.for_field("sha256", "sha256 is 64 lowercase hex digits.")
    canonical = "" if name in (None, "") else image_reference("name", name)
    return ImageUpload.objects.create(
        host=host,
        owner=actor,
        key=secrets.token_hex(16),
        size=size,
        sha256=str(sha256 or ""),
        name=canonical,
    )


def _receiving(host: Host, actor: User, key: str) -> ImageUpload:
    image_admin_check(actor=actor, doing=DOING)
    upload = (
        ImageUpload.objects.select_for_update()
        .filter(host=host, owner=actor, key=key, state=UploadState.RECEIVING)
        .first()
    )
    if upload is None:
        raise ApplicationError.for_field(
            "upload", "No upload of yours with this key is under way on this host."
        )
    return upload


def image_upload_chunk(*, host: Host, actor: User, key: str, n: int, data: bytes) -> ImageUpload:
    """Append chunk `n` (counted from 0, in order, at most 1 MiB) to the upload."""
    with transaction.atomic():
        upload = _receiving(host, actor, key)
        if n != upload.chunks:
            raise ApplicationError.for_field(
                "chunk", f"Chunk {n} is out of order: chunk {upload.chunks} comes next."
            )
        if not data:
            raise ApplicationError.for_field("chunk", "The chunk is empty.")
        if len(data) > CHUNK_MAX:
            raise ApplicationError.for_field(
                "chunk", f"A chunk is at most {CHUNK_MAX} bytes; this one is {len(data)}."
            )
        if upload.received + len(data) > upload.size:
            raise ApplicationError.for_field(
                "chunk", f"The chunk goes past the archive's size of {upload.size} bytes."
            )
        redis_key = messages.image_upload_key(upload.key)
        pipe = redis_client().pipeline()
        pipe.rpush(redis_key, data)
        pipe.expire(redis_key, UPLOAD_TTL)
        pipe.execute()
        upload.chunks += 1
        upload.received += len(data)
        upload.save(update_fields=["chunks", "received"])
    return upload


def _arrived_sha256(client: redis.Redis, redis_key: str, chunks: int) -> tuple[str, int]:
    """The SHA-256 of the chunks on Redis and how many there are."""
    digest = hashlib.sha256()
    count = 0
    for start in range(0, chunks, READ_BATCH):
        batch: list[bytes] = client.lrange(redis_key, start, start + READ_BATCH - 1)  # type: ignore[assignment]
        for chunk in batch:
            digest.update(chunk)
        count += len(batch)
    return digest.hexdigest(), count


def image_upload_finish(*, host: Host, actor: User, key: str) -> Dispatched:
    """Hand the whole archive to the host's agent to load; refused while bytes are
    missing, and the upload dropped when what arrived is not whole or does not hash to
    the `sha256` given at the start (it is uploaded again)."""
    refused: ApplicationError | None = None
    with transaction.atomic():
        upload = _receiving(host, actor, key)
        if upload.received != upload.size:
            raise ApplicationError.for_field(
                "size", f"{upload.received} of the archive's {upload.size} bytes have arrived."
            )
        host_require_online(host)
        client = redis_client()
        redis_key = messages.image_upload_key(upload.key)
        sha256, count = _arrived_sha256(client, redis_key, upload.chunks)
        if count != upload.chunks or client.llen(redis_key) != upload.chunks:
            refused = Conflict.for_field(
                "upload",
                f"{count} of the upload's {upload.chunks} chunks are still on the server "
                "(they expire hours after the last one came): upload it again.",
            )
        elif upload.sha256 and sha256 != upload.sha256:
            refused = ApplicationError.for_field(
                "sha256", f"What arrived hashes to {sha256}, not {upload.sha256}: upload it again."
            )
        if refused is not None:
            upload.delete()
            client.delete(redis_key)
    if refused is not None:
        raise refused
    with transaction.atomic():
        upload = _receiving(host, actor, key)
        upload.sha256 = sha256
        upload.state = UploadState.SENT
        upload.save(update_fields=["sha256", "state"])
        slug, chunks, name = host.slug, upload.chunks, upload.name or None
        what = f"an archive of {upload.size} bytes" + (f" as {name}" if name else "")
        sent = image_action_sent(
            host=host,
            sentence=f"load: {what} sent",
            send=lambda: dispatch.image_load(
                host=slug, upload=key, chunks=chunks, sha256=sha256, name=name
            ),
        )
    return {**sent, "refs": [name] if name else []}
