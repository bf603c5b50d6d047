"""The capture jobs sent to a host's agent (docs/messages.md, Captures); tests patch this
seam. The queues and errors are those of `labmgr.deployments.dispatch`."""

from __future__ import annotations

from typing import Unpack

from labmgr.deployments.dispatch import ask
from labmgr.hosts import trust
from labplan.messages import AgentTask, CaptureStartAnswer, CaptureStartArgs, CaptureStopArgs

# The agent compiles the filter and waits for tcpdump to open the interface; it may also
# be busy with another job of its queue.
START_TIMEOUT = 40.0


def start(*, host: str, **kwargs: Unpack[CaptureStartArgs]) -> CaptureStartAnswer:
    """Start a capture and wait for the agent's answer: started, or refused on a field."""
    outcome = ask(
        AgentTask.CAPTURE_START, host, kwargs, wait=START_TIMEOUT, doing="start the capture"
    )
    return {
        "ok": bool(outcome["ok"]),
        "field": str(outcome.get("field", "")),
        "error": str(outcome.get("error", "")),
    }


def stop(*, host: str, capture: str) -> None:
    args: CaptureStopArgs = {"capture": capture}
    trust.send(AgentTask.CAPTURE_STOP, host, args)
