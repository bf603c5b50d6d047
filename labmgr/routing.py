"""Websocket routes: the lab's live stream, the node terminals and the dashboard's stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.urls import re_path

from labmgr.deployments.terminal import TerminalConsumer
from labmgr.labs.consumers import LabConsumer
from labmgr.web.consumers import DashboardConsumer

if TYPE_CHECKING:  # names the stubs of Channels give, not Channels itself
    from channels.consumer import _ASGIApplicationProtocol
    from channels.routing import URLRouter, _ExtendedURLPattern


def _route(pattern: str, consumer: _ASGIApplicationProtocol) -> _ExtendedURLPattern:
    """Django's re_path for a consumer, as Channels routes them. The ignore: django-stubs
    types the route's callback as a Django view only; the pattern is the one Channels'
    URLRouter takes, its callback the consumer."""
    return cast("_ExtendedURLPattern", re_path(pattern, consumer))  # type: ignore[arg-type]


websocket_urlpatterns: list[_ExtendedURLPattern | URLRouter] = [
    _route(r"^ws/labs/(?P<lab>[0-9]{1,18})/?$", LabConsumer.as_asgi()),
    _route(
        r"^ws/labs/(?P<lab>[0-9]{1,18})/nodes/(?P<node>[a-z0-9][a-z0-9_-]{0,30})/terminal/?$",
        TerminalConsumer.as_asgi(),
    ),
    _route(r"^ws/me/?$", DashboardConsumer.as_asgi()),
]
