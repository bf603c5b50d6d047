"""Reports reach the control plane's services only when a registered host signed them:
each attack is a message as a forger with access to the broker would put it on the
`control` queue, run through the real Celery task; the assertions are what the database
holds afterwards and what the operator reads in the log."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User

from labmgr.celery import app
from labmgr.deployments import dispatch
from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.deployments.models import Deployment
from labmgr.hosts import trust
from labmgr.hosts.models import Host, SeenMessage
from labmgr.labs.models import Lab
from labplan import envelope
from tests.unit.labmgr.conftest import FULL_FACTS, Broker, Dispatched

S = DeploymentStatus
FORGED_KEY = bytes([7] * 32)


def report(
    task: str,
    kwargs: dict[str, Any],
    *,
    host: str = "local",
    key: bytes | None = None,
    id: str | None = None,
    issued: float | None = None,
) -> str:
    """Put a report on the control queue as an agent (or a forger) would; its id."""
    if key is None:
        key = bytes.fromhex(Host.objects.get(slug=host).key)
    task_id = id or uuid.uuid4().hex
    sealed = envelope.seal(
        key,
        task=task,
        host=host,
        id=task_id,
        issued=time.time() if issued is None else issued,
        kwargs=kwargs,
    )
    app.tasks[task].apply(kwargs={"signed": sealed}, task_id=task_id, throw=True)
    return task_id


def heartbeat(host: str, **how: Any) -> str:
    facts = {**FULL_FACTS, "capacity": {"cpus": 2, "memory": 2**32}}
    beat = {"host": host, "facts": facts, "tokens": [], "sent": time.time()}
    return report("labmgr.control.heartbeat", beat, host=host, **how)


@pytest.fixture
def deployment(
    alice_lab: Lab, alice: User, online_host: Host, dispatched: Dispatched
) -> Deployment:
    return deployment_deploy(lab=alice_lab, actor=alice)


def apply_result(deployment: Deployment) -> dict[str, Any]:
    return {"deployment": deployment.pk, "action": "apply", "ok": True, "error": "", "nodes": []}


def status(deployment: Deployment) -> str:
    deployment.refresh_from_db()
    return deployment.status


def test_a_registered_hosts_signed_heartbeat_puts_it_online(db: None) -> None:
    trust.host_register(slug="lab-7")

    heartbeat("lab-7")

    assert Host.objects.get(slug="lab-7").status == "online"


def test_a_heartbeat_from_a_host_nobody_registered_is_refused(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    heartbeat("intruder", key=FORGED_KEY)

    assert not Host.objects.exists()
    assert "refused labmgr.control.heartbeat" in caplog.text
    assert "host 'intruder' is not registered" in caplog.text


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ({"key": FORGED_KEY}, "the signature does not match the host's key"),
        ({"issued": time.time() - 600}, "the message is stale"),
    ],
)
def test_a_forged_or_stale_heartbeat_leaves_the_host_as_it_was(
    db: None, caplog: pytest.LogCaptureFixture, how: dict[str, Any], why: str
) -> None:
    trust.host_register(slug="lab-7")

    heartbeat("lab-7", **how)

    assert Host.objects.get(slug="lab-7").status == "unknown"
    assert why in caplog.text


def test_a_forged_result_does_not_move_a_deployment(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    report("labmgr.control.deployment_result", apply_result(deployment), key=FORGED_KEY)

    assert status(deployment) == S.PENDING
    assert "the signature does not match" in caplog.text


def test_a_signed_result_moves_it_and_the_same_report_again_is_refused_as_a_replay(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = report("labmgr.control.deployment_result", apply_result(deployment))
    assert status(deployment) == S.RUNNING
    Deployment.objects.filter(pk=deployment.pk).update(status=S.DESTROYING)

    report("labmgr.control.deployment_result", apply_result(deployment), id=task_id)

    assert status(deployment) == S.DESTROYING
    assert "the report was received before: a replay" in caplog.text
    assert SeenMessage.objects.filter(id=task_id).count() == 1


def test_one_host_cannot_report_for_another_hosts_deployment(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    trust.host_register(slug="lab-7")  # registered, signs with its own key

    report("labmgr.control.deployment_result", apply_result(deployment), host="lab-7")
    report(
        "labmgr.control.deployment_result",
        {**apply_result(deployment), "host": "local"},  # naming the right host, signed by lab-7
        host="lab-7",
    )

    assert status(deployment) == S.PENDING
    assert "from host lab-7, which has no part of it" in caplog.text
    assert "host 'lab-7' signed a report naming host 'local'" in caplog.text


def test_a_rotation_sends_the_new_key_wrapped_and_takes_it_once_the_agent_confirms(
    broker: Broker, django_capture_on_commit_callbacks: Any
) -> None:
    host = Host.objects.get(slug="lab-1")
    old = bytes.fromhex(host.key)

    with django_capture_on_commit_callbacks(execute=True):
        trust.host_key_rotate(host=host)

    [(task, kwargs, queue)] = broker.sent
    assert (task, queue) == ("labmgr.agent.rekey", "host.lab-1")
    new = envelope.unwrap_key(old, kwargs["key"], _id(broker.envelopes[0]))
    host.refresh_from_db()
    assert new.hex() == host.next_key and host.key == old.hex()
    assert kwargs["key"] != host.next_key  # the broker never sees the key itself

    report("labmgr.control.rekeyed", {}, host="lab-1", key=new)

    host.refresh_from_db()
    assert (host.key, host.next_key) == (new.hex(), "")
    heartbeat("lab-1", key=old)  # the old key signs nothing any more
    assert Host.objects.get(slug="lab-1").status == "unknown"
    heartbeat("lab-1", key=new)
    assert Host.objects.get(slug="lab-1").status == "online"


def _id(sealed: dict[str, str]) -> str:
    return str(json.loads(sealed["body"])["id"])


def test_an_answer_the_host_did_not_sign_is_refused(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = broker.send_task

    def forged(name: str, **kwargs: Any) -> Any:
        result = real(name, **kwargs)
        result.outcome = envelope.seal(
            FORGED_KEY,
            task=envelope.result_task(name),
            host="lab-1",
            id=result.id,
            issued=time.time(),
            kwargs={"value": {"exit": 0, "stdout": "all fine", "stderr": ""}},
        )
        return result

    monkeypatch.setattr(trust.app, "send_task", forged)

    with pytest.raises(dispatch.CommandFailed) as refused:
        dispatch.exec_(host="lab-1", deployment=3, token="lm3", node="a", argv=["id"], timeout=1)

    assert "the signature does not match the host's key" in refused.value.message


def test_nothing_is_sent_to_a_host_that_was_never_registered(db: None) -> None:
    with pytest.raises(trust.HostNotRegistered):
        dispatch.destroy(host="nowhere", deployment=3, token="lm3")
