"""Heartbeats and the silent-host check, called as the tasks the agents and beat send."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from labmgr.deployments import tasks as deployment_tasks
from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.deployments.models import Deployment
from labmgr.hosts import tasks, trust
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from tests.unit.labmgr.conftest import FULL_FACTS, Dispatched

S = DeploymentStatus


def _heartbeat(
    host: str = "local", tokens: list[str] | None = None, sent: float | None = None
) -> None:
    tasks.heartbeat(
        host=host,
        facts=dict(FULL_FACTS, capacity={"cpus": 4, "memory": 2**33}),
        tokens=tokens or [],
        sent=time.time() if sent is None else sent,
    )


def _silence(host: Host, seconds: float = 3600) -> None:
    Host.objects.filter(pk=host.pk).update(last_seen=timezone.now() - timedelta(seconds=seconds))


@pytest.fixture
def running(alice_lab: Lab, alice: User, online_host: Host, dispatched: Dispatched) -> Deployment:
    deployment = deployment_deploy(lab=alice_lab, actor=alice)
    deployment_tasks.deployment_result(
        deployment=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )
    # The status was set a moment ago; heartbeats taken after it speak about it.
    Deployment.objects.filter(pk=deployment.pk).update(
        updated=timezone.now() - timedelta(seconds=5)
    )
    return deployment


def _status(deployment: Deployment) -> str:
    deployment.refresh_from_db()
    return deployment.status


def test_the_first_heartbeat_of_a_registered_host_puts_it_online_with_its_facts(
    db: None,
) -> None:
    trust.host_register(slug="lab-7")
    _heartbeat("lab-7")
    host = Host.objects.get(slug="lab-7")
    assert (host.name, host.status, host.cpus, host.memory) == ("lab-7", "online", 4, 2**33)
    assert host.facts["link_kinds"] == FULL_FACTS["link_kinds"]
    assert host.last_seen is not None


def test_a_heartbeat_of_a_host_nobody_registered_makes_no_host(db: None) -> None:
    _heartbeat("lab-7")
    assert not Host.objects.exists()


def test_a_heartbeat_that_waited_too_long_in_the_queue_is_ignored(db: None) -> None:
    trust.host_register(slug="lab-7")
    _heartbeat("lab-7", sent=time.time() - 3600)
    assert Host.objects.get(slug="lab-7").status != "online"


def test_a_silent_host_goes_offline_and_its_deployments_unknown(
    running: Deployment, online_host: Host
) -> None:
    _silence(online_host)
    tasks.hosts_check()
    online_host.refresh_from_db()
    assert online_host.status == "offline"
    assert _status(running) == S.UNKNOWN
    assert running.steps.last().message == "running -> unknown: host local stopped answering"


def test_a_host_reporting_again_brings_its_deployments_back_as_its_tokens_show(
    running: Deployment, online_host: Host
) -> None:
    _silence(online_host)
    tasks.hosts_check()
    _heartbeat(tokens=[running.token], sent=time.time() + 1)
    assert _status(running) == S.RUNNING
    online_host.refresh_from_db()
    assert online_host.status == "online"


def test_a_deployment_the_returning_host_no_longer_has_has_failed(
    running: Deployment, online_host: Host
) -> None:
    _silence(online_host)
    tasks.hosts_check()
    _heartbeat(tokens=[], sent=time.time() + 1)
    assert _status(running) == S.FAILED
    assert running.steps.last().message == "unknown -> failed: host local reports again"


def test_a_running_deployment_missing_from_a_fresh_heartbeat_has_failed(
    running: Deployment,
) -> None:
    _heartbeat(tokens=[])
    assert _status(running) == S.FAILED
    assert running.steps.last().message == "running -> failed: host local no longer has it"


def test_a_heartbeat_older_than_the_status_says_nothing_about_it(running: Deployment) -> None:
    _heartbeat(tokens=[], sent=time.time() - 20)
    assert _status(running) == S.RUNNING


def test_tokens_no_deployment_owns_are_swept(
    running: Deployment, dispatched: Dispatched, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _heartbeat(tokens=[running.token, "lm9z"])
    assert dispatched.sent[-1] == ("sweep", "local", {"live": [running.token]})


def test_a_heartbeat_with_only_owned_tokens_sweeps_nothing(
    running: Deployment, dispatched: Dispatched, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _heartbeat(tokens=[running.token])
    assert callbacks == []
    assert dispatched.sent == []


def test_a_deployment_without_news_fails_and_is_torn_down(
    alice_lab: Lab,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    django_capture_on_commit_callbacks: Any,
) -> None:
    deployment = deployment_deploy(lab=alice_lab, actor=alice)
    Deployment.objects.filter(pk=deployment.pk).update(
        dispatched=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.hosts_check()
    assert _status(deployment) == S.FAILED
    assert deployment.steps.last().message.startswith("pending -> failed: no news from host local")
    assert dispatched.sent[-1] == (
        "destroy",
        "local",
        {"deployment": deployment.pk, "token": deployment.token},
    )
