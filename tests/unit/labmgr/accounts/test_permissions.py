"""The authorization table, and the API obeying it for every actor.

Personas: alice owns the objects (her lab is shared with class-a); bob is in class-a;
dave teaches alice's class; charlie is nobody to her; root is an admin.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from labmgr.accounts.permissions import Action, Actor, Decision, Resource, actor_for_lab, decide
from labmgr.accounts.services import classroom_create
from labmgr.deployments.services import deployment_create
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.reservations.models import Reservation
from tests.unit.labmgr.conftest import Dispatched

A, D = Actor, Decision
ALLOW, E403, E404, E401 = D.ALLOW, D.FORBIDDEN, D.NOT_FOUND, D.UNAUTHENTICATED
ACTORS = [A.OWNER, A.MEMBER, A.TEACHER, A.OTHER, A.ANONYMOUS, A.ADMIN]

# resource, action: outcome for owner, member, teacher, other, anonymous, admin.
TABLE: dict[tuple[Resource, Action], list[Decision]] = {
    (Resource.LAB, Action.VIEW): [ALLOW, ALLOW, ALLOW, E404, E401, ALLOW],
    (Resource.LAB, Action.CHANGE): [ALLOW, E403, E403, E404, E401, ALLOW],
    (Resource.EXPORT, Action.VIEW): [ALLOW, ALLOW, ALLOW, E404, E401, ALLOW],
    (Resource.DEPLOYMENT, Action.VIEW): [ALLOW, ALLOW, ALLOW, E404, E401, ALLOW],
    (Resource.DEPLOYMENT, Action.CHANGE): [ALLOW, E403, E403, E404, E401, ALLOW],
    (Resource.STREAM, Action.VIEW): [ALLOW, ALLOW, ALLOW, E404, E401, ALLOW],
    (Resource.METRICS, Action.VIEW): [ALLOW, ALLOW, ALLOW, E404, E401, ALLOW],
    (Resource.TERMINAL, Action.CHANGE): [ALLOW, E403, E403, E404, E401, ALLOW],
    (Resource.RESERVATION, Action.VIEW): [ALLOW, E404, ALLOW, E404, E401, ALLOW],
    (Resource.RESERVATION, Action.CHANGE): [ALLOW, E404, E403, E404, E401, ALLOW],
    (Resource.HOST, Action.VIEW): [ALLOW, ALLOW, ALLOW, ALLOW, E401, ALLOW],
    (Resource.HOST, Action.BOOK): [ALLOW, ALLOW, ALLOW, ALLOW, E401, ALLOW],
    (Resource.HOST, Action.CHANGE): [E403, E403, E403, E403, E401, ALLOW],
}


@pytest.mark.parametrize(("resource", "action"), list(TABLE))
def test_the_table_says_who_may_do_what(resource: Resource, action: Action) -> None:
    assert [decide(actor, resource, action) for actor in ACTORS] == TABLE[resource, action]


@pytest.fixture
def dave(alice: User) -> User:
    """Teaches the class alice is in."""
    teacher = User.objects.create_user("dave")
    classroom_create(name="net-101", teacher=teacher, members=[alice])
    return teacher


@pytest.fixture
def people(alice: User, bob: User, charlie: User, dave: User, root: User) -> dict[Actor, Any]:
    return {
        A.OWNER: alice,
        A.MEMBER: bob,
        A.TEACHER: dave,
        A.OTHER: charlie,
        A.ANONYMOUS: None,
        A.ADMIN: root,
    }


def test_each_persona_has_the_relation_it_stands_for(
    people: dict[Actor, Any], shared_lab: Lab
) -> None:
    assert {actor: actor_for_lab(user, shared_lab) for actor, user in people.items()} == {
        actor: actor for actor in ACTORS
    }


@pytest.fixture
def objects(shared_lab: Lab, alice: User) -> dict[str, Any]:
    host = Host.objects.create(name="server", slug="server", cpus=4, memory=2**33, pids=1000)
    start = timezone.now() + timedelta(hours=1)
    reservation = Reservation.objects.create(
        owner=alice, host=host, start=start, end=start + timedelta(hours=1), whole_host=True
    )
    deployment = deployment_create(lab=shared_lab, owner=alice, host=host)
    return {"lab": shared_lab, "host": host, "reservation": reservation, "deployment": deployment}


def later(hours: int) -> str:
    return (timezone.now() + timedelta(hours=hours)).isoformat()


# One API request per (resource, action) that exists today, and its success status.
Call = Callable[[APIClient, dict[str, Any]], Any]
REQUESTS: dict[tuple[Resource, Action], tuple[Call, int]] = {
    (Resource.LAB, Action.VIEW): (lambda c, o: c.get(f"/api/labs/{o['lab'].pk}/"), 200),
    (Resource.LAB, Action.CHANGE): (
        lambda c, o: c.patch(f"/api/labs/{o['lab'].pk}/", {"description": "x"}, format="json"),
        200,
    ),
    (Resource.EXPORT, Action.VIEW): (
        lambda c, o: c.get(f"/api/labs/{o['lab'].pk}/export?format=json"),
        200,
    ),
    (Resource.METRICS, Action.VIEW): (
        lambda c, o: c.get(f"/api/labs/{o['lab'].pk}/metrics"),
        200,
    ),
    (Resource.DEPLOYMENT, Action.VIEW): (
        lambda c, o: c.get(f"/api/deployments/{o['deployment'].pk}/"),
        200,
    ),
    (Resource.DEPLOYMENT, Action.CHANGE): (
        lambda c, o: c.post(f"/api/deployments/{o['deployment'].pk}/cancel/"),
        202,
    ),
    (Resource.RESERVATION, Action.VIEW): (
        lambda c, o: c.get(f"/api/reservations/{o['reservation'].pk}/"),
        200,
    ),
    (Resource.RESERVATION, Action.CHANGE): (
        lambda c, o: c.patch(
            f"/api/reservations/{o['reservation'].pk}/", {"note": "x"}, format="json"
        ),
        200,
    ),
    (Resource.HOST, Action.VIEW): (
        lambda c, o: c.get(f"/api/hosts/{o['host'].pk}/availability/"),
        200,
    ),
    (Resource.HOST, Action.BOOK): (
        lambda c, o: c.post(
            "/api/reservations/",
            {"host": o["host"].pk, "start": later(3), "end": later(4), "whole_host": True},
            format="json",
        ),
        201,
    ),
}
STATUS = {E403: 403, E404: 404, E401: 401}
CASES = [
    pytest.param(resource, action, actor, id=f"{resource}-{action}-{actor}")
    for resource, action in REQUESTS
    for actor in ACTORS
]


@pytest.mark.parametrize(("resource", "action", "actor"), CASES)
def test_the_api_answers_as_the_table_says(
    resource: Resource,
    action: Action,
    actor: Actor,
    people: dict[Actor, Any],
    objects: dict[str, Any],
    api: Callable[[User | None], APIClient],
    dispatched: Dispatched,
) -> None:
    call, success = REQUESTS[resource, action]
    response = call(api(people[actor]), objects)
    decision = decide(actor, resource, action)
    assert response.status_code == (success if decision is ALLOW else STATUS[decision])
