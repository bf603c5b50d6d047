"""Site-wide error pages that never show a traceback."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "errors": {}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No template context: a broken context processor must not break the error page too.
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "Internal error; it has been logged.", "errors": {}}, status=500
        )
    return HttpResponse(
        "<!doctype html><title>Server error</title><h1>Server error</h1>"
        "<p>Something went wrong on our side; it has been logged.</p>",
        status=500,
    )
