"""labmgr.http_handler answers HTTP as Django's own ASGI handler does, on a fixed set of
long-lived threads that keep their database connections from one request to the next."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from django.core import signals
from django.db import connection

from labmgr.http_handler import ThreadedASGIHandler


class Answer:
    def __init__(self, messages: list[Mapping[str, Any]]) -> None:
        start, *body = messages
        self.status: int = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in body)
        self.finished = not body[-1].get("more_body", False)


async def _call(app: ThreadedASGIHandler, method: str, path: str, body: bytes = b"") -> Answer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Mapping[str, Any]] = []

    async def receive() -> Mapping[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # no disconnect while the response is sent
        raise AssertionError

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return Answer(sent)


def call(app: ThreadedASGIHandler, method: str, path: str, body: bytes = b"") -> Answer:
    return asyncio.run(_call(app, method, path, body))


@pytest.fixture
def app() -> Iterator[ThreadedASGIHandler]:
    handler = ThreadedASGIHandler(threads=2)
    yield handler
    handler.executor.shutdown(wait=True)


@pytest.fixture
def request_threads() -> Iterator[list[int]]:
    """The thread of each request, as `request_started` sees it."""
    seen: list[int] = []

    def record(**kwargs: Any) -> None:
        seen.append(threading.get_ident())

    signals.request_started.connect(record, weak=False)
    yield seen
    signals.request_started.disconnect(record)


def test_it_answers_as_django_does(app: ThreadedASGIHandler) -> None:
    answer = call(app, "GET", "/api/labs/")
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == "Token"
    assert answer.headers["content-type"] == "application/json"
    assert "credentials were not provided" in json.loads(answer.body)["detail"]
    assert answer.finished


@pytest.mark.django_db
def test_a_request_body_reaches_the_view(app: ThreadedASGIHandler) -> None:
    body = json.dumps({"username": "nobody", "password": "wrong"}).encode()
    answer = call(app, "POST", "/api/token", body)
    assert answer.status == 400
    assert "errors" in json.loads(answer.body)


def test_a_static_file_arrives_whole(app: ThreadedASGIHandler) -> None:
    answer = call(app, "GET", "/static/web/favicon.svg")
    assert answer.status == 200
    assert answer.body.startswith(b"<svg") and answer.body.rstrip().endswith(b"</svg>")
    assert int(answer.headers["content-length"]) == len(answer.body)


def test_requests_take_turns_on_the_handlers_threads(
    app: ThreadedASGIHandler, request_threads: list[int]
) -> None:
    async def many() -> list[Answer]:
        return await asyncio.gather(*(_call(app, "GET", "/api/labs/") for _ in range(12)))

    answers = asyncio.run(many())
    assert [a.status for a in answers] == [401] * 12
    assert len(request_threads) == 12
    assert 1 <= len(set(request_threads)) <= 2
    assert threading.get_ident() not in request_threads  # never the event loop's thread


@pytest.mark.django_db(transaction=True)
def test_a_thread_keeps_its_database_connection_between_requests(
    request_threads: list[int],
) -> None:
    assert connection.settings_dict["CONN_MAX_AGE"] > 0
    app = ThreadedASGIHandler(threads=1)
    opened: list[int] = []

    def query(**kwargs: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        opened.append(id(connection.connection))

    signals.request_finished.connect(query, weak=False)
    try:
        for _ in range(3):
            call(app, "GET", "/api/labs/")
    finally:
        signals.request_finished.disconnect(query)
        app.executor.submit(lambda: connection.close()).result()  # the thread's own
        app.executor.shutdown(wait=True)
    assert len(set(request_threads)) == 1
    assert len(opened) == 3 and len(set(opened)) == 1
