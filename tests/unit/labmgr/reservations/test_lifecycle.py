"""The beat's tick on a controlled clock: start, warnings, the end that takes labs down."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from labmgr import events
from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_create, deployment_transition
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.reservations.choices import ReservationStatus
from labmgr.reservations.lifecycle import reservations_tick
from labmgr.reservations.services import reservation_cancel, reservation_extend
from labmgr.reservations.tasks import reservations_tick as tick_task
from tests.unit.labmgr.conftest import Dispatched
from tests.unit.labmgr.reservations.helpers import WHOLE, Book, Clock, at

S = DeploymentStatus


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, Any]]]:
    sent: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr(events, "publish", lambda groups, event: sent.append((groups, event)))
    return sent


def running(lab: Lab, owner: User, host: Host) -> Deployment:
    deployment = deployment_create(lab=lab, owner=owner, host=host)
    deployment_transition(deployment=deployment, to=S.DEPLOYING)
    return deployment_transition(deployment=deployment, to=S.RUNNING)


def test_a_reservation_becomes_active_at_its_start(book: Book, alice: User, now: Clock) -> None:
    mine = book(alice, 1, 2, WHOLE)
    assert reservations_tick().started == []
    now.advance(hours=1)
    assert reservations_tick().started == [mine.pk]
    mine.refresh_from_db()
    assert mine.status == ReservationStatus.ACTIVE
    assert reservations_tick().started == []


def test_the_owner_is_warned_before_the_end_and_again_at_one_minute(
    book: Book, alice: User, now: Clock, settings: Any, published: list[Any]
) -> None:
    settings.LABMGR_RESERVATION_WARN_BEFORE = 600
    mine = book(alice, 0, 1, WHOLE)
    now.advance(minutes=45)
    reservations_tick()
    assert published == []
    now.advance(minutes=5)  # 10 minutes left
    reservations_tick()
    now.advance(seconds=30)
    reservations_tick()  # warned already: nothing new
    now.advance(minutes=9)  # 30 s left
    reservations_tick()
    assert published == [
        (
            [f"reservations.{alice.pk}"],
            {
                "type": "reservation.warning",
                "reservation": mine.pk,
                "host": "server",
                "end": "2030-01-07T10:00:00+00:00",
                "seconds_left": 600,
                "final": False,
            },
        ),
        (
            [f"reservations.{alice.pk}"],
            {
                "type": "reservation.warning",
                "reservation": mine.pk,
                "host": "server",
                "end": "2030-01-07T10:00:00+00:00",
                "seconds_left": 30,
                "final": True,
            },
        ),
    ]


def test_an_extended_reservation_is_warned_again(
    book: Book, alice: User, now: Clock, published: list[Any]
) -> None:
    mine = book(alice, 0, 1, WHOLE)
    now.advance(minutes=55)
    assert reservations_tick().warned == [mine.pk]
    reservation_extend(reservation=mine, actor=alice, until=at(2))
    now.advance(minutes=55)
    assert reservations_tick().warned == [mine.pk]
    assert [e["end"] for _, e in published] == [
        "2030-01-07T10:00:00+00:00",
        "2030-01-07T11:00:00+00:00",
    ]


def test_at_the_end_the_owners_labs_on_the_host_are_destroyed_and_it_closes(
    book: Book,
    alice: User,
    bob: User,
    server: Host,
    alice_lab: Lab,
    now: Clock,
    dispatched: Dispatched,
    published: list[Any],
) -> None:
    mine = book(alice, 0, 1, WHOLE)
    deployment = running(alice_lab, alice, server)
    now.advance(minutes=59)
    assert reservations_tick().ended == []
    now.advance(minutes=1)
    assert reservations_tick().ended == [mine.pk]
    deployment.refresh_from_db()
    mine.refresh_from_db()
    assert (deployment.status, mine.status, mine.released) == (S.DESTROYING, "closed", True)
    assert published[-1][1] == {
        "type": "reservation.ended",
        "reservation": mine.pk,
        "host": "server",
        "status": "closed",
        "destroyed": [deployment.pk],
    }
    assert reservations_tick().ended == []


def test_a_following_reservation_keeps_the_labs_running(
    book: Book,
    alice: User,
    server: Host,
    alice_lab: Lab,
    now: Clock,
    dispatched: Dispatched,
    published: list[Any],
) -> None:
    first = book(alice, 0, 1, WHOLE)
    book(alice, 1, 2, WHOLE)
    deployment = running(alice_lab, alice, server)
    now.advance(hours=1)
    assert reservations_tick().ended == [first.pk]
    deployment.refresh_from_db()
    assert deployment.status == S.RUNNING


def test_cancelling_a_running_reservation_takes_its_labs_down_at_the_next_tick(
    book: Book,
    alice: User,
    server: Host,
    alice_lab: Lab,
    now: Clock,
    dispatched: Dispatched,
    published: list[Any],
) -> None:
    mine = book(alice, 0, 2, WHOLE)
    deployment = running(alice_lab, alice, server)
    now.advance(minutes=30)
    reservation_cancel(reservation=mine, actor=alice)
    assert tick_task() == {"started": [], "warned": [], "ended": [mine.pk]}
    deployment.refresh_from_db()
    assert deployment.status == S.DESTROYING


def test_a_reservation_cancelled_before_its_start_destroys_nothing(
    book: Book,
    alice: User,
    server: Host,
    alice_lab: Lab,
    now: Clock,
    dispatched: Dispatched,
) -> None:
    mine = book(alice, 1, 2, WHOLE)
    reservation_cancel(reservation=mine, actor=alice)
    deployment = running(alice_lab, alice, server)  # e.g. deployed by the rule's off switch
    now.advance(hours=3)
    assert reservations_tick().ended == []
    deployment.refresh_from_db()
    assert deployment.status == S.RUNNING


def test_the_chosen_lab_is_deployed_at_the_start(
    book: Book,
    alice: User,
    server: Host,
    alice_lab: Lab,
    now: Clock,
    dispatched: Dispatched,
    django_capture_on_commit_callbacks: Any,
) -> None:
    mine = book(alice, 1, 2, WHOLE, auto_deploy=alice_lab)
    now.advance(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        reservations_tick()
    [deployment] = Deployment.objects.filter(lab=alice_lab)
    assert (deployment.owner, deployment.host, dispatched.tasks()) == (alice, server, ["apply"])
    mine.refresh_from_db()
    assert mine.last_error == ""


def test_a_refused_auto_deploy_is_recorded_on_the_reservation(
    book: Book, alice: User, server: Host, alice_lab: Lab, now: Clock, dispatched: Dispatched
) -> None:
    mine = book(alice, 1, 2, WHOLE, auto_deploy=alice_lab)
    Host.objects.filter(pk=server.pk).update(status="offline")
    now.advance(hours=1)
    reservations_tick()
    mine.refresh_from_db()
    assert mine.last_error == "Auto-deploy of 'demo' refused: No host is online to deploy on."
