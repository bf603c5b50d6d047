"""Control tasks about hosts: heartbeats from agents (signed: labmgr.hosts.trust), and the
beat's silent-host check."""

from __future__ import annotations

import logging
from typing import Any

from labmgr.celery import app
from labmgr.deployments.reconcile import (
    deployments_fail_stuck,
    deployments_mark_unknown,
    deployments_reconcile_host,
)
from labmgr.errors import ApplicationError
from labmgr.hosts.services import host_heartbeat, hosts_mark_silent_offline
from labmgr.hosts.trust import agent_report, seen_messages_prune
from labplan.messages import BeatTask, ControlTask

log = logging.getLogger(__name__)


@agent_report(ControlTask.HEARTBEAT)
def heartbeat(*, host: str, facts: dict[str, Any], tokens: list[str], sent: float) -> None:
    try:
        record = host_heartbeat(slug=host, facts=facts, sent=sent)
    except ApplicationError as exc:
        log.warning("heartbeat refused: %s", exc.message)
        return
    if record is not None:
        deployments_reconcile_host(host=record, tokens=tokens, sent=sent)


@app.task(name=str(BeatTask.HOSTS_CHECK))
def hosts_check() -> None:
    for host in hosts_mark_silent_offline():
        deployments_mark_unknown(host=host)
    deployments_fail_stuck()
    seen_messages_prune()
