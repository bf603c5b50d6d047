"""Request parsers shared by API views: JSON with a bound on its nesting, and a labfile
sent as raw text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser

from labmgr import jsondepth

YAML_MEDIA_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


@dataclass(frozen=True)
class LabfileText:
    """A request body holding a labfile; `fmt` is None when the content type does not say."""

    content: bytes
    fmt: str | None


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, refusing a body nested past `jsondepth.MAX_DEPTH` levels with a
    400 where json's recursion would otherwise end in a 500."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
            jsondepth.check(data)
        except (RecursionError, jsondepth.TooDeep):
            raise ParseError(jsondepth.TOO_DEEP) from None
        return data


class LabfileTextParser(BaseParser):
    """Takes any content type and hands the body over unparsed: labplan reads labfiles.

    The format comes from the content type (JSON, YAML); text/plain and anything else
    leave it to labplan's detection.
    """

    media_type = "*/*"

    # request.data is this text, not the mapping other parsers give.
    def parse(  # type: ignore[override]
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> LabfileText:
        base = (media_type or "").split(";")[0].strip().lower()
        fmt = "json" if base == "application/json" else "yaml" if base in YAML_MEDIA_TYPES else None
        return LabfileText(content=stream.read() if stream is not None else b"", fmt=fmt)
