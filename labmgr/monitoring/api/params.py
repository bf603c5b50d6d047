"""The query of the metrics endpoint: `since`, `node`, `format`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

from labmgr.errors import ApplicationError

FORMATS = ("json", "csv")


@dataclass(frozen=True)
class MetricsQuery:
    since: datetime | None
    node: str | None
    fmt: str

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> MetricsQuery:
        fmt = params.get("format") or "json"
        if fmt not in FORMATS:
            raise ApplicationError.for_field("format", "The format must be json or csv.")
        return cls(since=_since(params.get("since")), node=params.get("node") or None, fmt=fmt)


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        when = parse_datetime(text)
    except ValueError:
        when = None
    if when is None:
        raise ApplicationError.for_field(
            "since", f"{text!r} is neither an ISO 8601 time nor Unix seconds."
        )
    return when if when.tzinfo else when.replace(tzinfo=UTC)
