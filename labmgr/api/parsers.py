"""Request parsers shared by API views: a labfile sent as raw text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from rest_framework.parsers import BaseParser

YAML_MEDIA_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


@dataclass(frozen=True)
class LabfileText:
    """A request body holding a labfile; `fmt` is None when the content type does not say."""

    content: bytes
    fmt: str | None


class LabfileTextParser(BaseParser):
    """Takes any content type and hands the body over unparsed: labplan reads labfiles.

    The format comes from the content type (JSON, YAML); text/plain and anything else
    leave it to labplan's detection.
    """

    media_type = "*/*"

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> LabfileText:
        base = (media_type or "").split(";")[0].strip().lower()
        fmt = "json" if base == "application/json" else "yaml" if base in YAML_MEDIA_TYPES else None
        return LabfileText(content=stream.read() if stream is not None else b"", fmt=fmt)
