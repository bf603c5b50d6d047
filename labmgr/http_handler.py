"""Django's HTTP handling for the ASGI server, on a pool of long-lived threads.

Django's own ASGI handler gives every request a new thread (a `ThreadSensitiveContext`
per request) and hops between the event loop and that thread for each middleware hook,
signal and the view; a new thread also means a new database connection, opened and
closed for every request. Here the event loop only reads the body and writes the
response; everything synchronous (the `request_started` signal, the middleware chain
loaded for synchronous use, the view, a streamed body, `request_finished`) runs in one
call on a thread of a fixed pool, which keeps its database connection between requests
as `CONN_MAX_AGE` allows. Requests, responses, signals and errors are Django's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

from labmgr.middleware import Receive, Scope, Send


async def _replay(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class ThreadedASGIHandler(ASGIHandler):
    """An ASGI app for HTTP that serves Django's synchronous stack on `threads` threads.

    Each thread holds at most one request at a time, so at most `threads` requests of a
    process run at once (and as many database connections are open); more wait their
    turn in order of arrival."""

    def __init__(self, threads: int) -> None:
        base.BaseHandler.__init__(self)
        # Synchronous: the chain runs straight through in the request's thread.
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        try:
            response, closed = await loop.run_in_executor(
                self.executor, self.respond, scope, body_file
            )
            try:
                # A client gone meanwhile: the server drops what is sent (as Django's
                # handler, which cannot stop a synchronous view either).
                await self.send_response(response, send)
            finally:
                if not closed:
                    await loop.run_in_executor(self.executor, response.close)
        finally:
            body_file.close()

    def respond(self, scope: Scope, body_file: IO[bytes]) -> tuple[HttpResponseBase, bool]:
        """The response to the request, its body complete, and whether it is closed
        (`request_finished` sent) already: all but an asynchronously streamed one are."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        assert response is not None
        if response.streaming and getattr(response, "is_async", False):
            return response, False
        if response.streaming:
            # Read here what Django's handler would read in a thread of its own: the
            # whole body (a static file), then hand it to the event loop as it expects.
            parts: list[bytes] = list(response)
            response.streaming_content = _replay(parts)  # type: ignore[attr-defined]
        response.close()
        return response, True
