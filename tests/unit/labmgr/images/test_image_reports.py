"""What agents say about images reaches the control plane: a heartbeat's store listing,
the report after an image action, the digests an apply ran, and a pull's progress as
one step row updated in place."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from labmgr.deployments import tasks as deployment_tasks
from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.deployments.models import Deployment
from labmgr.hosts import tasks as host_tasks
from labmgr.hosts.models import Host
from labmgr.images import tasks as image_tasks
from labmgr.labs.models import Lab
from tests.unit.labmgr.conftest import FULL_FACTS, Dispatched
from tests.unit.labmgr.hosts.test_trust import report

ALPINE = "docker.io/library/alpine:3.20"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def fact(ref: str = ALPINE, digest: str = DIGEST_A, **changes: Any) -> dict[str, Any]:
    return {
        "digest": digest,
        "refs": [ref],
        "size": 7_340_032,
        "last_used": 1_700_000_000.5,
        "tokens": [],
        **changes,
    }


def beat(host: str = "local", **facts: Any) -> None:
    host_tasks.heartbeat(host=host, facts={**FULL_FACTS, **facts}, tokens=[], sent=time.time())


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, Any]]]:
    sent: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr("labmgr.events._send", lambda groups, event: sent.append((groups, event)))
    return sent


# --- the store's listing -----------------------------------------------------------------


def test_a_heartbeat_lists_the_hosts_images_apart_from_its_facts(online_host: Host) -> None:
    beat(images=[fact(tokens=["lm1"])])
    online_host.refresh_from_db()
    assert online_host.images == [fact(tokens=["lm1"])]
    assert "images" not in online_host.facts
    assert online_host.facts["kernel"] == "6.1.0"


def test_a_heartbeat_without_images_keeps_the_list_an_older_agent_cannot_send(
    online_host: Host,
) -> None:
    beat(images=[fact()])
    beat()
    online_host.refresh_from_db()
    assert [i["refs"] for i in online_host.images] == [[ALPINE]]


@pytest.mark.parametrize(
    "bad",
    [
        {"digest": "sha256:xyz"},
        {"refs": "alpine"},
        {"size": -1},
        {"size": True},
        {"last_used": float("nan")},
        {"tokens": ["../etc"]},
    ],
)
def test_an_image_entry_with_a_malformed_field_is_dropped_and_the_others_kept(
    online_host: Host, bad: dict[str, Any]
) -> None:
    beat(images=[fact(**bad), fact("docker.io/library/busybox:1.36", DIGEST_B), "junk"])
    online_host.refresh_from_db()
    assert [i["digest"] for i in online_host.images] == [DIGEST_B]


def test_a_changed_listing_tells_the_hosts_group_and_an_unchanged_one_does_not(
    online_host: Host,
    events: list[tuple[list[str], dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        beat(images=[fact()])
        beat(images=[fact()])
    told = [(groups, e) for groups, e in events if e["type"] == "host.images"]
    assert len(told) == 1
    assert told[0][0] == ["host.local"]
    assert told[0][1]["count"] == 1


# --- an image action's report ------------------------------------------------------------


def test_an_images_report_stores_the_store_and_the_outcome_of_the_action(
    online_host: Host,
) -> None:
    image_tasks.images(
        host="local",
        action="prune",
        ok=True,
        error="",
        message=f"removed {ALPINE}",
        images=[],
    )
    online_host.refresh_from_db()
    assert online_host.images == []
    assert (online_host.images_ok, online_host.images_status) == (True, f"prune: removed {ALPINE}")
    assert online_host.images_changed is not None


def test_a_failed_action_shows_the_agents_error(online_host: Host) -> None:
    beat(images=[fact()])
    image_tasks.images(
        host="local",
        action="pull",
        ok=False,
        error="ref: docker.io/library/nope:1 is not in the registry",
        message="",
        images=[fact()],
    )
    online_host.refresh_from_db()
    assert online_host.images_ok is False
    assert online_host.images_status == "pull: ref: docker.io/library/nope:1 is not in the registry"
    assert len(online_host.images) == 1


def test_an_images_report_counts_only_when_the_host_signed_it(
    online_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    args = {"host": "local", "action": "prune", "ok": True, "error": "", "message": "x"}
    report("labmgr.control.images", {**args, "images": [fact()]})
    online_host.refresh_from_db()
    assert online_host.images_status == "prune: x"
    report("labmgr.control.images", {**args, "images": []}, key=bytes([7] * 32))
    online_host.refresh_from_db()
    assert len(online_host.images) == 1
    assert "refused labmgr.control.images" in caplog.text


# --- the digests an apply ran --------------------------------------------------------------


@pytest.fixture
def deployment(
    alice_lab: Lab, alice: User, online_host: Host, dispatched: Dispatched
) -> Deployment:
    return deployment_deploy(lab=alice_lab, actor=alice)


def test_an_apply_result_records_the_digest_each_image_ran(deployment: Deployment) -> None:
    deployment_tasks.deployment_result(
        deployment=deployment.pk,
        action="apply",
        ok=True,
        error="",
        nodes=[],
        images={ALPINE: DIGEST_A, "bad ref": "sha256:short", 7: DIGEST_B},
    )
    deployment.refresh_from_db()
    assert deployment.status == "running"
    assert deployment.images == {ALPINE: DIGEST_A}


def test_a_later_result_merges_its_digests_into_the_record(deployment: Deployment) -> None:
    from labmgr.deployments.services.reports import deployment_images_store

    deployment_images_store(deployment_id=deployment.pk, images={ALPINE: DIGEST_A})
    deployment_images_store(
        deployment_id=deployment.pk,
        images={"docker.io/library/busybox:1.36": DIGEST_B, ALPINE: DIGEST_B},
    )
    deployment.refresh_from_db()
    assert deployment.images == {"docker.io/library/busybox:1.36": DIGEST_B, ALPINE: DIGEST_B}


def test_a_failed_apply_records_no_digests(deployment: Deployment) -> None:
    deployment_tasks.deployment_result(
        deployment=deployment.pk,
        action="apply",
        ok=False,
        error="pull_image: no such image",
        nodes=[],
        images={ALPINE: DIGEST_A},
    )
    deployment.refresh_from_db()
    assert deployment.images == {}


# --- a pull's progress ---------------------------------------------------------------------

PULL = {
    "seq": 1001,
    "total": 5,
    "name": "pull",
    "target": ALPINE,
    "status": "running",
    "message": "1/5 layers, 2.1 MB",
    "seconds": 0.5,
}


def test_a_pulls_progress_is_one_step_updated_in_place_then_done(
    deployment: Deployment,
    events: list[tuple[list[str], dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        deployment_tasks.deployment_step(deployment=deployment.pk, **PULL)
        deployment_tasks.deployment_step(
            deployment=deployment.pk, **{**PULL, "message": "3/5 layers, 12.3 MB", "seconds": 1.5}
        )
        deployment_tasks.deployment_step(
            deployment=deployment.pk,
            **{**PULL, "status": "done", "message": f"{DIGEST_A}", "seconds": 2.0},
        )
    rows = list(deployment.steps.filter(agent_seq=1001).values_list("status", "message"))
    assert rows == [("succeeded", DIGEST_A)]
    shown = [e for _, e in events if e["type"] == "deployment.step"]
    assert [(e["status"], e["message"]) for e in shown] == [
        ("started", "1/5 layers, 2.1 MB"),
        ("started", "3/5 layers, 12.3 MB"),
        ("succeeded", DIGEST_A),
    ]
    assert len({e["seq"] for e in shown}) == 1  # the lab page updates one row


def test_progress_delivered_late_or_after_the_end_changes_nothing(
    deployment: Deployment,
) -> None:
    later = {**PULL, "message": "4/5 layers, 20 MB", "seconds": 1.8}
    deployment_tasks.deployment_step(deployment=deployment.pk, **later)
    deployment_tasks.deployment_step(deployment=deployment.pk, **PULL)  # older, late
    step = deployment.steps.get(agent_seq=1001)
    assert (step.status, step.message) == ("started", "4/5 layers, 20 MB")
    deployment_tasks.deployment_step(
        deployment=deployment.pk, **{**PULL, "status": "failed", "message": "layer 3: digest"}
    )
    deployment_tasks.deployment_step(deployment=deployment.pk, **later)  # after its end
    rows = list(deployment.steps.filter(agent_seq=1001).values_list("status", "message"))
    assert rows == [("failed", "layer 3: digest")]
