"""The time zone a page is drawn in, activated for the whole request by a middleware.

The server and the API keep UTC. A page (and the admin) is drawn in the browser's zone,
which the page's script keeps in the `tz` cookie (static/web/js/calendar.js; UTC until it
is known). A form posted from a page names the zone it was drawn in (its `tz` field), and
wins over the cookie, so what was typed is read the way it was shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

ZONE_COOKIE = "tz"
ZONE_FIELD = "tz"  # the hidden field of a form that shows times
API_PREFIX = "/api/"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Names browsers give the zone that is UTC all year: shown as "UTC".
UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}
    | {"GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "GMT0", "GMT+0", "GMT-0"}
)


def zone_named(name: str) -> tuple[str, tzinfo]:
    """The zone an IANA name stands for, UTC for an unknown or empty one."""
    name = name.strip()
    if not name or name in UTC_NAMES or len(name) > 64:
        return "UTC", UTC
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC", UTC


def zone_of(request: HttpRequest) -> tzinfo:
    """The zone the request's page is drawn in (and its form read in): the posted form's,
    else the browser's as its script last told."""
    if request.method == "POST" and request.content_type in FORM_TYPES:
        posted = request.POST.get(ZONE_FIELD)
        if posted is not None:
            return zone_named(posted)[1]
    return zone_named(request.COOKIES.get(ZONE_COOKIE, ""))[1]


def zone_name() -> str:
    """The name of the zone this request is drawn in, as pages show it ("UTC", "Europe/Paris")."""
    return timezone.get_current_timezone_name()


def local_text(moment: datetime) -> str:
    """A moment as the pages write it, in this request's zone: "Tue 01 Dec 10:00"."""
    return f"{timezone.localtime(moment):%a %d %b %H:%M}"


class TimeZoneMiddleware:
    """Activates the page's zone for its view and templates (`timezone.activate`), and UTC
    again once the response is made: a thread serves other requests next. The API is left
    in UTC. The zone is picked in `process_view`, after the body size check, because a
    posted form's zone is in the body."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        if not request.path_info.startswith(API_PREFIX):
            timezone.activate(zone_of(request))
