"""Response renderers for text downloads (labfile export)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from rest_framework.renderers import BaseRenderer


class YAMLRenderer(BaseRenderer):
    """Renders text as is, and error dicts as YAML, for clients asking for YAML."""

    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        return text.encode("utf-8")
