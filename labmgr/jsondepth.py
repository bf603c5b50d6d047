"""JSON from outside (request bodies, websocket frames) read with a bound on its nesting.

`json.loads` recurses once per level and raises RecursionError near the interpreter's
limit, which would surface as a 500; and what is read is walked again by code that
recurses too (DRF's JSONField, error flattening). Past `MAX_DEPTH` levels a body is
refused as a client error instead.
"""

from __future__ import annotations

import json
from typing import Any

# A labfile is at most 32 levels deep (labplan.reader.MAX_DEPTH) and travels one level
# down in a request body; nothing the API or the pages take is deeper.
MAX_DEPTH = 64
TOO_DEEP = f"The request body is nested deeper than {MAX_DEPTH} levels."


class TooDeep(ValueError):
    """A JSON document nested past MAX_DEPTH levels."""

    def __init__(self) -> None:
        super().__init__(TOO_DEEP)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """`json.loads`, raising TooDeep (a ValueError) for a document past MAX_DEPTH levels."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise TooDeep() from None
    check(value)
    return value


def check(value: object) -> None:
    """Raise TooDeep when `value` holds lists or dicts more than MAX_DEPTH levels deep.
    A loop, not recursion: it must not fail the way it guards against."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise TooDeep()
        pending.extend((child, depth + 1) for child in children)
