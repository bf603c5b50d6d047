"""The one module that sends work to host agents (docs/messages.md, queue `host.<slug>`).

Each function sends one task of labplan.messages with its payload (keyword arguments
only), signed with the host's key (labmgr.hosts.trust), and an agent's answer counts only
when it signed it; nothing else in labmgr sends to agents. Tests patch this seam. Services call
it from `transaction.on_commit`, so an agent never hears of a row that was rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout

from labmgr.errors import ApplicationError
from labmgr.hosts import trust
from labplan.envelope import Refused
from labplan.messages import (
    AgentTask,
    ApplyArgs,
    Budget,
    CheckArgs,
    DestroyArgs,
    ExecAnswer,
    ExecArgs,
    LiveAnswer,
    LiveArgs,
    LiveChange,
    SweepArgs,
    TerminalOpenArgs,
)


class HostUnreachable(ApplicationError):
    """The host's agent did not answer in time."""

    status = 504


class CommandFailed(ApplicationError):
    """The agent could not run the command (no such node, no such program, ...)."""

    status = 502


def apply(
    *,
    host: str,
    deployment: int,
    plan: dict[str, Any],
    previous: dict[str, Any] | None,
    budget: Budget | None = None,
    registries: str = "",
) -> None:
    """Apply (or, with `previous`, redeploy) the plan; `budget` is the reservation's
    share the agent puts the deployment's cgroups in (docs/messages.md). Without one the
    message has no `budget` at all, as before reservations had a kernel side.
    `registries`: the logins the plan's pulls need, sealed under the host's key
    (labmgr.images.logins); without any the message has no `registries`."""
    args: ApplyArgs = {"deployment": deployment, "plan": plan, "previous": previous}
    if budget is not None:
        args["budget"] = budget.copy()
    if registries:
        args["registries"] = registries
    trust.send(AgentTask.APPLY, host, args)


def destroy(*, host: str, deployment: int, token: str) -> None:
    args: DestroyArgs = {"deployment": deployment, "token": token}
    trust.send(AgentTask.DESTROY, host, args)


def check(*, host: str, deployment: int, plan: dict[str, Any]) -> None:
    args: CheckArgs = {"deployment": deployment, "plan": plan}
    trust.send(AgentTask.CHECK, host, args)


def sweep(*, host: str, live: list[str]) -> None:
    args: SweepArgs = {"live": live}
    trust.send(AgentTask.SWEEP, host, args)


def terminal_open(*, host: str, session: str, token: str, node: str, cols: int, rows: int) -> None:
    args: TerminalOpenArgs = {
        "session": session,
        "token": token,
        "node": node,
        "cols": cols,
        "rows": rows,
    }
    trust.send(AgentTask.TERMINAL_OPEN, host, args)


def ask(task: AgentTask, host: str, args: Mapping[str, Any], *, wait: float, doing: str) -> Any:
    """Send `task` to the host's agent and wait up to `wait` seconds for its answer (its
    Celery result); HostUnreachable when none comes, CommandFailed when the agent raised.
    `doing` completes "Host X did not ... in time" and "Host X could not ...: why"."""
    result = trust.send(task, host, args)
    try:
        answer = result.get(timeout=wait, disable_sync_subtasks=False)
    except CeleryTimeout as exc:
        raise HostUnreachable(f"Host {host} did not {doing} in time.") from exc
    except Exception as exc:  # the agent's own error, re-raised by Celery
        raise CommandFailed(f"Host {host} could not {doing}: {exc}") from exc
    finally:
        result.forget()
    try:
        return trust.open_answer(task, host, answer, result.id)
    except Refused as exc:
        raise CommandFailed(f"Host {host} could not {doing}: {exc}") from exc


def exec_(
    *, host: str, deployment: int, token: str, node: str, argv: list[str], timeout: float
) -> ExecAnswer:
    """Run `argv` in the node and wait for its outcome (the agent's Celery result)."""
    args: ExecArgs = {
        "deployment": deployment,
        "token": token,
        "node": node,
        "argv": argv,
        "timeout": timeout,
    }
    # The agent may be busy with another job of its queue: allow for that too.
    outcome = ask(AgentTask.EXEC, host, args, wait=timeout + 30, doing="run the command")
    return {
        "exit": int(outcome["exit"]),
        "stdout": str(outcome["stdout"]),
        "stderr": str(outcome["stderr"]),
    }


def live(*, host: str, deployment: int, token: str, changes: list[LiveChange]) -> LiveAnswer:
    """Make live changes of running nodes on one host and wait for the agent's answer."""
    args: LiveArgs = {"deployment": deployment, "token": token, "changes": changes}
    # A stop waits for the node's init (a few seconds); the agent may be busy besides.
    answer = ask(AgentTask.LIVE, host, args, wait=60, doing="make the change")
    return {
        "ok": bool(answer["ok"]),
        "error": str(answer["error"]),
        "done": int(answer["done"]),
        "stopped": [str(n) for n in answer["stopped"]],
        "seconds": float(answer["seconds"]),
    }
