"""The one module that sends work to host agents (docs/messages.md, queue `host.<slug>`).

Each function sends one named task with keyword arguments only, signed with the host's
key (labmgr.hosts.trust), and an agent's answer counts only when it signed it; nothing
else in labmgr knows task names or queues of agents. Tests patch this seam. Services call
it from `transaction.on_commit`, so an agent never hears of a row that was rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from celery.exceptions import TimeoutError as CeleryTimeout

from labmgr.errors import ApplicationError
from labmgr.hosts import trust
from labplan.envelope import Refused


class ExecResult(TypedDict):
    exit: int
    stdout: str
    stderr: str


class HostUnreachable(ApplicationError):
    """The host's agent did not answer in time."""

    status = 504


class CommandFailed(ApplicationError):
    """The agent could not run the command (no such node, no such program, ...)."""

    status = 502


def queue(host_slug: str) -> str:
    return f"host.{host_slug}"


def _send(name: str, host_slug: str, **kwargs: Any) -> Any:
    return trust.send(name, host_slug, kwargs)


def apply(
    *,
    host: str,
    deployment: int,
    plan: dict[str, Any],
    previous: dict[str, Any] | None,
    budget: Mapping[str, Any] | None = None,
) -> None:
    """Apply (or, with `previous`, redeploy) the plan; `budget` is the reservation's
    share the agent puts the deployment's cgroups in (docs/messages.md). Without one the
    message has no `budget` at all, as before reservations had a kernel side."""
    extra = {"budget": dict(budget)} if budget is not None else {}
    _send("labmgr.agent.apply", host, deployment=deployment, plan=plan, previous=previous, **extra)


def destroy(*, host: str, deployment: int, token: str) -> None:
    _send("labmgr.agent.destroy", host, deployment=deployment, token=token)


def check(*, host: str, deployment: int, plan: dict[str, Any]) -> None:
    _send("labmgr.agent.check", host, deployment=deployment, plan=plan)


def sweep(*, host: str, live: list[str]) -> None:
    _send("labmgr.agent.sweep", host, live=live)


def terminal_open(*, host: str, session: str, token: str, node: str, cols: int, rows: int) -> None:
    _send(
        "labmgr.agent.terminal_open",
        host,
        session=session,
        token=token,
        node=node,
        cols=cols,
        rows=rows,
    )


def ask(name: str, host: str, *, wait: float, doing: str, **kwargs: Any) -> Any:
    """Send a task to the host's agent and wait up to `wait` seconds for its answer (its
    Celery result); HostUnreachable when none comes, CommandFailed when the agent raised.
    `doing` completes "Host X did not ... in time" and "Host X could not ...: why"."""
    result = _send(name, host, **kwargs)
    try:
        answer = result.get(timeout=wait, disable_sync_subtasks=False)
    except CeleryTimeout as exc:
        raise HostUnreachable(f"Host {host} did not {doing} in time.") from exc
    except Exception as exc:  # the agent's own error, re-raised by Celery
        raise CommandFailed(f"Host {host} could not {doing}: {exc}") from exc
    finally:
        result.forget()
    try:
        return trust.open_answer(name, host, answer, result.id)
    except Refused as exc:
        raise CommandFailed(f"Host {host} could not {doing}: {exc}") from exc


def exec_(
    *, host: str, deployment: int, token: str, node: str, argv: list[str], timeout: float
) -> ExecResult:
    """Run `argv` in the node and wait for its outcome (the agent's Celery result)."""
    outcome = ask(
        "labmgr.agent.exec",
        host,
        # The agent may be busy with another job of its queue: allow for that too.
        wait=timeout + 30,
        doing="run the command",
        deployment=deployment,
        token=token,
        node=node,
        argv=argv,
        timeout=timeout,
    )
    return {
        "exit": int(outcome["exit"]),
        "stdout": str(outcome["stdout"]),
        "stderr": str(outcome["stderr"]),
    }
