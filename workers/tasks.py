"""Celery's side of the agent: the `labmgr.agent.*` tasks of docs/messages.md bound to an
`Agent` by their explicit names (`register`), and the `send` seam over Celery
(`celery_send`) that signs every report with the host's key.

Every message is opened with the host's key first (`Inbox`, over workers.keys): one that
is not signed for this host and task, is stale, came again after it was done, or carries
registry logins sealed under another key, is refused before it reaches a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from labplan import envelope
from labplan.envelope import Refused
from labplan.messages import CONTROL_QUEUE, AgentTask, ControlTask
from workers.agent import Agent
from workers.capture import tasks as capture_tasks
from workers.images.transfer import LoginsError, open_logins
from workers.jobs import Job
from workers.keys import Signer, new_id
from workers.reports import Send

log = logging.getLogger("labmgr.agent")

SEALED = (Job.APPLY, Job.IMAGE_PULL)  # the jobs whose message may carry registry logins


class Inbox:
    """Opens every message of this host's queue before a job sees it: signed with this
    host's key, for this task, under the id it came with, fresh, and not seen before."""

    def __init__(self, agent: Agent, signer: Signer) -> None:
        self.agent = agent
        self.signer = signer

    def open(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any:
        """The message's verified arguments and its envelope, or None (refused: logged,
        never answered with a report, which a forger could aim at someone's lab)."""
        signed = kwargs.get(envelope.FIELD)
        try:
            if set(kwargs) != {envelope.FIELD} or not request_id:
                raise Refused("the message is not signed")
            opened = self.signer.open(task, signed, request_id)
        except Refused as exc:
            log.warning("refused %s %s: %s", task, request_id, exc)
            return None
        return opened.kwargs, signed

    def once(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any:
        """`open`, also refusing a message whose id was acted on before (a job that does
        not go through `Agent.run`, which answers repeats from its record)."""
        opened = self.open(task, request_id, kwargs)
        if opened is None or request_id is None:
            return None
        if self.agent.jobs.read(request_id) is not None:
            log.warning("refused %s %s: it was delivered before", task, request_id)
            return None
        self.agent.jobs.finish(request_id, [], None)
        return opened

    def answer(self, task: str, request_id: str, value: Any) -> dict[str, Any]:
        """A job's Celery result, signed so the control plane knows this host said it."""
        return self.signer.seal(envelope.result_task(task), {"value": value}, id=request_id)


def register(app: Any, agent: Agent, signer: Signer) -> None:
    """Bind the jobs to `app` under the names of docs/messages.md: each takes one
    keyword argument, `signed` (labplan.envelope)."""
    inbox = Inbox(agent, signer)

    def bound(job: Job) -> Callable[..., Any]:
        def task(self: Any, **kwargs: Any) -> Any:
            opened = inbox.open(job.task, self.request.id, kwargs)
            if opened is None or not sealed_opens(job, self.request.id, opened[0]):
                return {"refused": "the agent refused the message (see its log)"}
            value = agent.run(self.request.id, job, opened[0], opened[1])
            return inbox.answer(job.task, self.request.id, value)

        return task

    def sealed_opens(job: Job, request_id: str, arguments: dict[str, Any]) -> bool:
        """Whether the registry logins the message carries open with the host's key: a
        message whose seal is another key's is refused as a forged one is (the job tells
        of logins that open but make no sense)."""
        if job not in SEALED:
            return True
        try:
            open_logins(signer.key, arguments.get("registries"))
        except Refused as exc:
            log.warning("refused %s %s: %s", job.task, request_id, exc)
            return False
        except LoginsError:
            pass
        return True

    for job in Job:
        app.task(name=job.task, bind=True, ignore_result=not job.answered)(bound(job))

    def terminal_open(self: Any, **kwargs: Any) -> bool:
        opened = inbox.once(AgentTask.TERMINAL_OPEN, self.request.id, kwargs)
        if opened is None:
            return False
        arguments = opened[0]
        if not envelope.STREAM_ID_RE.fullmatch(str(arguments.get("session", ""))):
            log.warning("refused terminal %r: not an unguessable session id", arguments)
            return False
        return agent.terminal_open(**arguments)

    app.task(name=str(AgentTask.TERMINAL_OPEN), bind=True, ignore_result=True)(terminal_open)

    def rekey(self: Any, **kwargs: Any) -> None:
        opened = inbox.once(AgentTask.REKEY, self.request.id, kwargs)
        if opened is None:
            return
        try:
            signer.rekey(signer.open(AgentTask.REKEY, opened[1], self.request.id))
        except Refused as exc:
            log.warning("refused a key rotation: %s", exc)
            return
        log.info("host key rotated")
        agent.send(ControlTask.REKEYED, {})

    app.task(name=str(AgentTask.REKEY), bind=True, ignore_result=True)(rekey)
    capture_tasks.register(app, agent, inbox=inbox, progress=celery_send(app, signer, retry=False))


def celery_send(app: Any, signer: Signer, *, retry: bool = True) -> Send:
    """The `send` seam over a Celery app: a task by name to queue `control`, signed with
    the host's key under a fresh task id. With `retry` a report waits for Redis to come
    back rather than being lost."""
    policy = {"max_retries": None, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3}

    def send(task: str, kwargs: Mapping[str, Any]) -> None:
        task_id = new_id()
        signed = {envelope.FIELD: signer.seal(task, kwargs, id=task_id)}
        app.send_task(
            task,
            kwargs=signed,
            task_id=task_id,
            queue=CONTROL_QUEUE,
            retry=retry,
            retry_policy=policy,
        )

    return send
