from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_create
from labmgr.labs.models import Lab
from labplan.naming import deployment_token

Api = Callable[[User | None], APIClient]


@pytest.fixture
def deployment(alice_lab: Lab, alice: User) -> Deployment:
    return deployment_create(lab=alice_lab, owner=alice)


@pytest.mark.parametrize("slash", ["/", ""])
def test_the_owner_reads_a_deployment_with_or_without_the_slash(
    api: Api, alice: User, deployment: Deployment, slash: str
) -> None:
    response = api(alice).get(f"/api/deployments/{deployment.pk}{slash}")
    assert response.status_code == 200
    body = response.json()
    assert body["url"] == f"http://testserver/api/deployments/{deployment.pk}/"
    assert (body["lab_name"], body["status"], body["token"]) == (
        "demo",
        "pending",
        deployment_token(deployment.pk),
    )
    assert body["steps"][0]["name"] == "created"
    assert body["plan"]["deployment"] == deployment_token(deployment.pk)


def test_the_list_leaves_out_snapshot_and_plan(
    api: Api, alice: User, deployment: Deployment
) -> None:
    [item] = api(alice).get("/api/deployments/").json()["results"]
    assert "plan" not in item
    assert item["id"] == deployment.pk


def test_deployments_follow_their_labs_visibility(
    api: Api, alice: User, bob: User, charlie: User, root: User, shared_lab: Lab
) -> None:
    deployment = deployment_create(lab=shared_lab, owner=alice)
    for user, code in ((bob, 200), (charlie, 404), (root, 200)):
        assert api(user).get(f"/api/deployments/{deployment.pk}").status_code == code
    assert api(charlie).get("/api/deployments/").json()["count"] == 0


def test_deployments_are_read_only(api: Api, alice: User, deployment: Deployment) -> None:
    response = api(alice).delete(f"/api/deployments/{deployment.pk}/")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.', "errors": {}}
