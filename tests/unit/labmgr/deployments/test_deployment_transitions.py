from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import User

from labmgr.deployments.choices import ALLOWED_TRANSITIONS, DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_transition
from labmgr.errors import Conflict
from labmgr.labs.models import Lab

S = DeploymentStatus
EDGES = [(a, b) for a, b in itertools.product(S, S) if b in ALLOWED_TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in itertools.product(S, S) if b not in ALLOWED_TRANSITIONS[a]]


def _deployment(lab: Lab, owner: User, status: DeploymentStatus) -> Deployment:
    return Deployment.objects.create(lab=lab, owner=owner, status=status)


def test_the_table_names_every_status() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(S)


def test_destroyed_and_cancelled_are_final() -> None:
    assert ALLOWED_TRANSITIONS[S.DESTROYED] == frozenset()
    assert ALLOWED_TRANSITIONS[S.CANCELLED] == frozenset()


@pytest.mark.parametrize(("current", "target"), EDGES, ids=[f"{a}->{b}" for a, b in EDGES])
def test_it_allows_each_edge_of_the_table(
    alice_lab: Lab, alice: User, current: DeploymentStatus, target: DeploymentStatus
) -> None:
    deployment = _deployment(alice_lab, alice, current)
    deployment_transition(deployment=deployment, to=target, reason="test")
    deployment.refresh_from_db()
    assert deployment.status == target
    step = deployment.steps.get()
    assert step.message == f"{current.value} -> {target.value}: test"


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_it_refuses_every_illegal_transition(
    alice_lab: Lab, alice: User, current: DeploymentStatus, target: DeploymentStatus
) -> None:
    deployment = _deployment(alice_lab, alice, current)
    with pytest.raises(Conflict) as refused:
        deployment_transition(deployment=deployment, to=target)
    assert refused.value.errors == {
        "status": [f"A {current.label.lower()} deployment cannot become {target.value}."]
    }
    deployment.refresh_from_db()
    assert deployment.status == current
    assert not deployment.steps.exists()


def test_it_checks_the_status_in_the_database_not_the_stale_object(
    alice_lab: Lab, alice: User
) -> None:
    deployment = _deployment(alice_lab, alice, S.PENDING)
    stale = Deployment.objects.get(pk=deployment.pk)
    deployment_transition(deployment=deployment, to=S.CANCELLED)
    with pytest.raises(Conflict):
        deployment_transition(deployment=stale, to=S.DEPLOYING)


def test_finishing_records_when(alice_lab: Lab, alice: User) -> None:
    deployment = _deployment(alice_lab, alice, S.DESTROYING)
    assert deployment.finished is None
    deployment_transition(deployment=deployment, to=S.DESTROYED)
    assert deployment.finished is not None
    deployment.refresh_from_db()
    assert deployment.finished is not None


def test_steps_are_numbered_in_order(alice_lab: Lab, alice: User) -> None:
    deployment = _deployment(alice_lab, alice, S.PENDING)
    for target in (S.DEPLOYING, S.RUNNING, S.DESTROYING, S.DESTROYED):
        deployment_transition(deployment=deployment, to=target)
    assert [(s.seq, s.message) for s in deployment.steps.all()] == [
        (1, "pending -> deploying"),
        (2, "deploying -> running"),
        (3, "running -> destroying"),
        (4, "destroying -> destroyed"),
    ]
