"""What an agent says its image store holds, checked: entries that are not an ImageFact
(docs/messages.md, Images) are dropped, never stored. Pure."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import TypeGuard

from labplan.messages import ImageFact

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
TOKEN_RE = re.compile(r"lm[0-9a-z]{1,13}")
MAX_IMAGES = 1000  # images of one host kept; a store past it is cut, not refused
MAX_REFS = 64
REF_MAX = 512


def image_facts(raw: object) -> list[ImageFact]:
    """The well-formed images of `raw` (an agent's list), ordered by their first reference
    (else digest); an entry with any malformed field is dropped whole."""
    if not isinstance(raw, list):
        return []
    images = [fact for item in raw[:MAX_IMAGES] if (fact := _fact(item)) is not None]
    return sorted(images, key=lambda f: (f["refs"][0] if f["refs"] else "~", f["digest"]))


def _fact(item: object) -> ImageFact | None:
    if not isinstance(item, Mapping):
        return None
    digest, refs, tokens = item.get("digest"), item.get("refs"), item.get("tokens")
    size, last_used = item.get("size"), item.get("last_used")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        return None
    if not _strings(refs, MAX_REFS, lambda r: 0 < len(r) <= REF_MAX):
        return None
    if not _strings(tokens, MAX_IMAGES, lambda t: bool(TOKEN_RE.fullmatch(t))):
        return None
    if not _number(size) or not _number(last_used):
        return None
    return {
        "digest": digest,
        "refs": sorted(set(refs)),
        "size": int(size),
        "last_used": float(last_used),
        "tokens": sorted(set(tokens)),
    }


def _strings(value: object, most: int, good: Callable[[str], bool]) -> TypeGuard[list[str]]:
    return (
        isinstance(value, list)
        and len(value) <= most
        and all(isinstance(v, str) and good(v) for v in value)
    )


def _number(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < 2**63
    )


def run_digests(raw: object) -> dict[str, str]:
    """The well-formed pairs of an apply result's `images` (reference -> the manifest
    digest its nodes ran); a pair with a malformed reference or digest is dropped."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        ref: digest
        for ref, digest in list(raw.items())[:MAX_IMAGES]
        if isinstance(ref, str)
        and 0 < len(ref) <= REF_MAX
        and ref.isprintable()
        and isinstance(digest, str)
        and DIGEST_RE.fullmatch(digest)
    }
