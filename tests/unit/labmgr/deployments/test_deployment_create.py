"""Creating a deployment: a pending record with a snapshot of its lab and the plan
compiled for its host."""

from __future__ import annotations

from django.contrib.auth.models import User

from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.services import deployment_create
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_update
from labplan.codec import plan_from_dict
from labplan.naming import deployment_token


def test_it_records_a_pending_deployment_with_snapshot_and_plan(
    alice_lab: Lab, alice: User
) -> None:
    deployment = deployment_create(lab=alice_lab, owner=alice)
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.PENDING
    assert deployment.token == deployment_token(deployment.pk)
    assert deployment.labfile["nodes"]["client"]["networks"]["lan"]["ipv4"] == "10.10.0.2"
    plan = plan_from_dict(deployment.plan)
    assert plan.deployment == deployment.token
    assert [h.host for h in plan.hosts] == ["local"]
    assert [(s.seq, s.name, s.message) for s in deployment.steps.all()] == [
        (1, "created", "Plan compiled for local.")
    ]


def test_the_plan_is_compiled_for_the_chosen_host(alice_lab: Lab, alice: User) -> None:
    host = Host.objects.create(name="Node A", slug="node-a")
    deployment = deployment_create(lab=alice_lab, owner=alice, host=host)
    assert [h["host"] for h in deployment.plan["hosts"]] == ["node-a"]


def test_the_snapshot_does_not_follow_later_edits(alice_lab: Lab, alice: User) -> None:
    deployment = deployment_create(lab=alice_lab, owner=alice)
    lab_update(lab=alice_lab, description="edited later")
    deployment.refresh_from_db()
    assert deployment.labfile["description"] == "Two nodes on one bridge"
