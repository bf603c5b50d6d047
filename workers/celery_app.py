"""The agent's Celery app: no Django, JSON only, consuming only this host's queue
`host.<slug>` and sending its reports to `control` by task name (docs/messages.md).

Redis is reached at `REDIS_URL` (a password in the URL works; `unix:///path` names a
socket). Kernel jobs are serial: prefetch 1, `acks_late`, and a visibility timeout longer
than the longest job, so a job in progress is not handed out again while it runs.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from kombu.entity import Queue

from labplan import messages
from labplan.messages import CONTROL_QUEUE, CONTROL_TASK_PREFIX
from workers import config

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LONGEST_JOB = 3600  # seconds: an apply of a 1,000-node lab takes well under a minute
VISIBILITY_TIMEOUT = 2 * LONGEST_JOB
RESULT_EXPIRES = 3600  # exec results: the caller waits for them right away


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def _with_scheme(url: str, scheme: str) -> str:
    # Not urlunsplit: it drops the "//" of an empty authority ("unix:///run/redis.sock").
    return scheme + url[url.index("://") :]


def celery_url(url: str) -> str:
    """`url` in kombu's spelling: a unix socket is `redis+socket://` there."""
    if urlsplit(url).scheme == "unix":
        return _with_scheme(url, "redis+socket")
    return url


def redis_client_url(url: str) -> str:
    """`url` in redis-py's spelling (the reverse of `celery_url`)."""
    if urlsplit(url).scheme in ("redis+socket", "socket"):
        return _with_scheme(url, "unix")
    return url


def host_slug(host: str | None = None) -> str:
    """The queue suffix of a host name: lower-case letters, digits and dashes."""
    name = (host or config.host_name()).lower()
    return re.sub(r"[^a-z0-9-]+", "-", name).strip("-") or "local"


def host_queue(host: str | None = None) -> str:
    return messages.host_queue(host_slug(host))


def make_app(url: str | None = None, host: str | None = None) -> Celery:
    """A Celery app for the agent of `host` (default: this machine's configured name)."""
    broker = celery_url(url or redis_url())
    queue = host_queue(host)
    app = Celery("labmgr-agent", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(_settings(queue))
    return app


def _settings(queue: str) -> dict[str, Any]:
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": queue,
        "task_queues": [Queue(queue), Queue(CONTROL_QUEUE)],
        "task_routes": {f"{CONTROL_TASK_PREFIX}*": {"queue": CONTROL_QUEUE}},
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT},
        "result_backend_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT},
        "result_expires": RESULT_EXPIRES,
        # Keep trying while Redis is away, at start and later: the agent outlives it.
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_heartbeat": 0,
        # A job half-way through the kernel is finished, not cancelled, if Redis drops.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }
