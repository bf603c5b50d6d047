"""The API router: every route answers with and without its trailing slash."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, re_path
from rest_framework.routers import DefaultRouter


class OptionalSlashRouter(DefaultRouter):
    """`/api/deployments/7/` is the canonical URL (what `reverse` and the schema give);
    `/api/deployments/7`, as issues and humans write it, reaches the same view instead of
    a redirect that would turn a POST into a GET."""

    include_format_suffixes = False

    def get_urls(self) -> list[Any]:
        urls: list[Any] = []
        for pattern in super().get_urls():
            urls.append(pattern)
            regex = str(pattern.pattern)
            if isinstance(pattern, URLPattern) and regex.endswith("/$") and regex != "^$":
                urls.append(re_path(regex[:-2] + "$", pattern.callback, pattern.default_args))
        return urls


def drop_slashless_twins(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
    """drf-spectacular preprocessing hook: document each route once, with its slash."""
    paths = {endpoint[0] for endpoint in endpoints}
    return [e for e in endpoints if e[0].endswith("/") or e[0] + "/" not in paths]
