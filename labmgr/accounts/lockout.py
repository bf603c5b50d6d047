"""What a client locked out by django-axes (too many failed logins) sees: the site's page
or the API's error shape, status 429, and when to try again."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: a 429 saying how long the lockout still lasts."""
    username = get_client_username(request, credentials) or ""
    wait = _remaining(request, username)
    sentence = (
        f"Too many failed login attempts for {username or 'this user'} from your address. "
        f"Try again in {_show_wait(wait)}."
    )
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": sentence, "errors": {}}, status=429)
    else:
        response = render(
            request, "registration/locked_out.html", {"sentence": sentence}, status=429
        )
    response["Retry-After"] = str(max(1, math.ceil(wait.total_seconds())))
    return response


def _remaining(request: HttpRequest, username: str) -> timedelta:
    """The lockout lasts the cool-off from the last failure that counted."""
    cool_off = get_cool_off(request) or timedelta(0)
    last: datetime | None = AccessAttempt.objects.filter(
        username=username, ip_address=getattr(request, "axes_ip_address", None)
    ).aggregate(last=Max("attempt_time"))["last"]
    if last is None:
        return cool_off
    return max(last + cool_off - timezone.now(), timedelta(seconds=1))


def _show_wait(wait: timedelta) -> str:
    seconds = math.ceil(wait.total_seconds())
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
