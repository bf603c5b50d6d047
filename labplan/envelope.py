"""Signed messages between the control plane and a host's agent (docs/messages.md,
"Signed messages"): the broker is a shared pipe, not an authority.

Every task either side sends carries one keyword argument, `signed`: an envelope
`{"body": TEXT, "mac": HEX}` where TEXT is the JSON of `{"v", "task", "host", "id",
"issued", "kwargs"}` and HEX its HMAC-SHA256 under the host's key. The receiver checks
the MAC over the very bytes that travelled (no canonical re-encoding), then that the body
names the task it arrived as, the host it is for (or from), the Celery task id it came
with, and that it was issued recently: a message forged without the key, meant for
another host or task, or replayed later is refused before anything acts on it. The task
id is the message's nonce; receivers remember the ids they acted on for as long as a
message stays fresh, so a replay within that time is refused too.

A host's key is 32 random bytes, written as 64 hex digits. A new key reaches an agent in
a message signed with the old one, wrapped (`wrap_key`) so the broker never sees it.

Pure: the clock and the randomness are the caller's (`issued`, `now`, the key bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from labplan.messages import AGENT_TASK_PREFIX, AgentTask, ControlTask

VERSION = 1
FIELD = "signed"  # the one keyword argument of every signed task
KEY_BYTES = 32
KEY_RE = re.compile(r"[0-9a-f]{64}")
ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLOCK_SKEW = 60.0  # seconds a message may seem to come from the future
# A terminal session or capture id names a stream on the broker: at least 128 random bits.
STREAM_ID_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")
_REKEY = b"labmgr rekey "


class Refused(Exception):
    """A message that must not be acted on; the sentence says why (for logs)."""


@dataclass(frozen=True)
class Opened:
    """A verified message: what it asks, and which of the given keys signed it."""

    task: str
    host: str
    id: str
    issued: float
    kwargs: dict[str, Any]
    key: int


def parse_key(text: str) -> bytes:
    """A key from its 64 hex digits (surrounding blanks ignored)."""
    value = text.strip().lower()
    if not KEY_RE.fullmatch(value):
        raise ValueError("a host key is 64 hexadecimal digits")
    return bytes.fromhex(value)


def mac_of(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def seal(
    key: bytes,
    *,
    task: str,
    host: str,
    id: str,
    issued: float,
    kwargs: Mapping[str, Any],
) -> dict[str, str]:
    """The envelope of a message `task` for (or from) `host`, with Celery task id `id`."""
    if not ID_RE.fullmatch(id):
        raise ValueError(f"{id!r} is not a message id")
    body = json.dumps(
        {"v": VERSION, "task": task, "host": host, "id": id, "issued": issued, "kwargs": kwargs},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return {"body": body, "mac": mac_of(key, body)}


def claimed_host(envelope: object) -> str:
    """The host an envelope says it is from, before it is verified: which key to try.
    Nothing else of an unverified body may be used."""
    body = _parts(envelope)[0]
    try:
        host = json.loads(body).get("host")
    except (ValueError, AttributeError) as exc:
        raise Refused("the message body is not a JSON object") from exc
    if not isinstance(host, str) or not host:
        raise Refused("the message names no host")
    return host


def open_(
    envelope: object,
    keys: Sequence[bytes],
    *,
    task: str,
    host: str,
    now: float,
    max_age: float,
    id: str | None = None,
) -> Opened:
    """The verified message, or Refused: a MAC none of `keys` made, a body for another
    task or host, another id than the one it travelled under, or older than `max_age`
    seconds (or more than CLOCK_SKEW in the future)."""
    body, mac = _parts(envelope)
    signer = next(
        (i for i, key in enumerate(keys) if hmac.compare_digest(mac_of(key, body), mac)), None
    )
    if signer is None:
        raise Refused("the signature does not match the host's key")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise Refused("the message body is not JSON") from exc
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise Refused("the message is not a version 1 envelope")
    if data.get("task") != task:
        raise Refused(f"the message was signed as {data.get('task')!r}, not {task!r}")
    if data.get("host") != host:
        raise Refused(f"the message was signed for host {data.get('host')!r}, not {host!r}")
    message_id, issued, kwargs = data.get("id"), data.get("issued"), data.get("kwargs")
    if not isinstance(message_id, str) or (id is not None and message_id != id):
        raise Refused("the message id is not the one it was signed with")
    if not isinstance(issued, int | float) or isinstance(issued, bool):
        raise Refused("the message has no issue time")
    if issued < now - max_age:
        raise Refused(f"the message is stale: issued {now - issued:.0f} s ago")
    if issued > now + CLOCK_SKEW:
        raise Refused("the message was issued in the future: check the clocks")
    if not isinstance(kwargs, dict):
        raise Refused("the message has no arguments")
    return Opened(task, host, message_id, float(issued), kwargs, signer)


def _parts(envelope: object) -> tuple[str, str]:
    if not isinstance(envelope, Mapping):
        raise Refused("the message is not signed")
    body, mac = envelope.get("body"), envelope.get("mac")
    if not isinstance(body, str) or not isinstance(mac, str):
        raise Refused("the message is not signed")
    return body, mac


def _pad(key: bytes, nonce: str) -> bytes:
    return hmac.new(key, _REKEY + nonce.encode(), hashlib.sha256).digest()


def wrap_key(old: bytes, new: bytes, nonce: str) -> str:
    """`new` hidden under `old` for one message (`nonce`: its id, never reused): XOR with
    an HMAC-derived pad, so only a holder of `old` reads it."""
    if len(new) != KEY_BYTES:
        raise ValueError("a host key is 32 bytes")
    return bytes(a ^ b for a, b in zip(new, _pad(old, nonce), strict=True)).hex()


def unwrap_key(old: bytes, wrapped: str, nonce: str) -> bytes:
    return bytes(a ^ b for a, b in zip(parse_key(wrapped), _pad(old, nonce), strict=True))


_SECRET = b"labmgr secret "


def _secret_key(key: bytes) -> bytes:
    """The AES key secrets travel under: derived from the host key, never the key itself."""
    return hmac.new(key, _SECRET + b"aes-256-gcm", hashlib.sha256).digest()


def seal_secret(key: bytes, plaintext: bytes) -> str:
    """`plaintext` (registry logins) readable only by a holder of the host `key`: AES-GCM
    under a key derived from it, a random nonce first, hex."""
    nonce = os.urandom(12)
    return (nonce + AESGCM(_secret_key(key)).encrypt(nonce, plaintext, _SECRET)).hex()


def open_secret(key: bytes, sealed: str) -> bytes:
    """What `seal_secret` sealed under `key`; Refused if another key sealed it or it was
    changed on the way."""
    try:
        raw = bytes.fromhex(sealed)
        return AESGCM(_secret_key(key)).decrypt(raw[:12], raw[12:], _SECRET)
    except (ValueError, InvalidTag):
        raise Refused("the sealed secret does not open with this host's key") from None


# --- how long a message stays fresh ---------------------------------------------------------

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
# A job for an agent that waited longer than a deployment may (LABMGR_DEPLOY_TIMEOUT's
# default) is refused: the control plane has given up on it. Removals stay good for a
# day: running one late only removes what was meant to go.
_FRESH_FOR: dict[str, float] = {
    AgentTask.DESTROY: DAY,
    AgentTask.SWEEP: DAY,
    ControlTask.HEARTBEAT: 30.0,
    ControlTask.METRICS: 2 * MINUTE,
    ControlTask.CAPTURE_PROGRESS: 2 * MINUTE,
}
AGENT_JOB_FRESH_FOR = 15 * MINUTE
REPORT_FRESH_FOR = 6 * HOUR  # a report waits for a control worker that was down


def fresh_for(task: str) -> float:
    """Seconds a message of `task` may wait between signing and acting."""
    if task in _FRESH_FOR:
        return _FRESH_FOR[task]
    return AGENT_JOB_FRESH_FOR if task.startswith(AGENT_TASK_PREFIX) else REPORT_FRESH_FOR


def result_task(task: str) -> str:
    """What an agent's answer to `task` (its Celery result) is signed as."""
    return task + ".result"
