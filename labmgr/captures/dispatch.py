"""The capture jobs sent to a host's agent (docs/messages.md, Captures); tests patch this
seam. The queues and errors are those of `labmgr.deployments.dispatch`."""

from __future__ import annotations

from typing import Any, TypedDict

from labmgr.deployments.dispatch import ask
from labmgr.hosts import trust

# The agent compiles the filter and waits for tcpdump to open the interface; it may also
# be busy with another job of its queue.
START_TIMEOUT = 40.0


class StartResult(TypedDict):
    ok: bool
    field: str
    error: str


def start(*, host: str, **kwargs: Any) -> StartResult:
    """Start a capture and wait for the agent's answer: started, or refused on a field."""
    outcome = ask(
        "labmgr.agent.capture_start", host, wait=START_TIMEOUT, doing="start the capture", **kwargs
    )
    return {
        "ok": bool(outcome["ok"]),
        "field": str(outcome.get("field", "")),
        "error": str(outcome.get("error", "")),
    }


def stop(*, host: str, capture: str) -> None:
    trust.send("labmgr.agent.capture_stop", host, {"capture": capture})
