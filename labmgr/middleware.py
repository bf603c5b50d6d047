"""Refuses request bodies over the upload limit with 413 before anything reads them.

Two layers, one answer. `BodyLimitASGI` wraps the HTTP app in `labmgr.asgi`: it counts
the bytes of the body as they arrive (chunked or not) and answers 413 the moment they pass
the limit, before Django would have spooled the whole body to memory or disk, and closes
the connection so nothing more is read. `BodySizeLimitMiddleware` serves WSGI and the test
client, where the body was handed over already: it refuses by Content-Length. Django itself
would answer 400 (RequestDataTooBig), and DRF's parsers read the stream without checking
the limit at all, so the limit is enforced here, once, for every view.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# As Django's ASGI handler types them (django-stubs): the app this wraps is one.
Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def too_large(path: str, limit: int) -> tuple[bytes, str]:
    """The 413's body and content type: the API's error shape under /api/, a sentence
    elsewhere."""
    message = f"The request body is larger than the limit of {limit} bytes (1 MiB)."
    if path.startswith("/api/"):
        return json.dumps({"detail": message, "errors": {}}).encode(), "application/json"
    return message.encode(), "text/plain; charset=utf-8"


def too_large_response(request: HttpRequest) -> HttpResponse:
    body, content_type = too_large(request.path, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return HttpResponse(body, status=413, content_type=content_type)


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return too_large_response(request)
        return self.get_response(request)


class _TooLarge(Exception):
    """Raised out of the wrapped app's `receive` once the body passed the limit."""


class BodyLimitASGI:
    """ASGI middleware for HTTP: a body over `limit` bytes is a 413, decided by its
    Content-Length before any of it is read, else as soon as the bytes received pass the
    limit. The app never sees the rest; the connection is closed after the answer."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.limit:
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _TooLarge:
            if started:  # pragma: no cover - Django reads the whole body before answering
                raise
            await self._refuse(scope, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body, content_type = too_large(scope.get("path", ""), self.limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is never read: the connection cannot carry
                    # another request, and closing it tells the client to stop sending.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
