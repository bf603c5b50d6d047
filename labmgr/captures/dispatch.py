"""The capture jobs sent to a host's agent (docs/messages.md, Captures); tests patch this
seam. The queues and errors are those of `labmgr.deployments.dispatch`."""

from __future__ import annotations

from typing import Any, TypedDict

from celery.exceptions import TimeoutError as CeleryTimeout

from labmgr.celery import app
from labmgr.deployments.dispatch import CommandFailed, HostUnreachable, queue

# The agent compiles the filter and waits for tcpdump to open the interface; it may also
# be busy with another job of its queue.
START_TIMEOUT = 40.0


class StartResult(TypedDict):
    ok: bool
    field: str
    error: str


def start(*, host: str, **kwargs: Any) -> StartResult:
    """Start a capture and wait for the agent's answer: started, or refused on a field."""
    result = app.send_task("labmgr.agent.capture_start", kwargs=kwargs, queue=queue(host))
    try:
        outcome = result.get(timeout=START_TIMEOUT, disable_sync_subtasks=False)
    except CeleryTimeout as exc:
        raise HostUnreachable(f"Host {host} did not start the capture in time.") from exc
    except Exception as exc:  # the agent's own error, re-raised by Celery
        raise CommandFailed(f"Host {host} could not start the capture: {exc}") from exc
    finally:
        result.forget()
    return {
        "ok": bool(outcome["ok"]),
        "field": str(outcome.get("field", "")),
        "error": str(outcome.get("error", "")),
    }


def stop(*, host: str, capture: str) -> None:
    app.send_task("labmgr.agent.capture_stop", kwargs={"capture": capture}, queue=queue(host))
