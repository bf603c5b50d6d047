"""A booking's auto-deploy checks the powers of its owner, not of who made the lab: the
host powers an admin gave a student's lab are refused when the booking starts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from labmgr.deployments.models import Deployment
from labmgr.labs.services import lab_create
from labmgr.reservations.lifecycle import reservations_tick
from tests.unit.labmgr.conftest import Dispatched, small_labfile
from tests.unit.labmgr.reservations.helpers import WHOLE, Book, Clock


def test_an_auto_deploy_of_host_powers_is_refused_naming_them(
    book: Book,
    alice: User,
    root: User,
    now: Clock,
    dispatched: Dispatched,
    django_capture_on_commit_callbacks: Any,
) -> None:
    tree = small_labfile("given")
    tree["nodes"]["web"]["privileged"] = True
    tree["networks"]["hostnet"] = {"driver": "host"}
    lab = lab_create(owner=alice, labfile_tree=tree, actor=root)
    mine = book(alice, 1, 2, WHOLE, auto_deploy=lab)
    now.advance(hours=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert reservations_tick().started == [mine.pk]

    mine.refresh_from_db()
    assert mine.last_error == (
        "Auto-deploy of 'given' refused: Only an admin may deploy this lab: it uses "
        "networks.hostnet.driver, nodes.web.privileged."
    )
    assert not Deployment.objects.exists()
    assert dispatched.sent == []


def test_an_auto_deploy_of_a_lab_that_no_longer_validates_is_recorded(
    book: Book, alice: User, now: Clock, dispatched: Dispatched
) -> None:
    lab = lab_create(owner=alice, labfile_tree=small_labfile("old"))
    lab.networks.update(subnet="not a subnet")  # e.g. a row written under other rules
    mine = book(alice, 1, 2, WHOLE, auto_deploy=lab)
    now.advance(hours=1)

    assert reservations_tick().started == [mine.pk]

    mine.refresh_from_db()
    assert mine.last_error.startswith("Auto-deploy of 'old' refused: networks.lan.subnet: ")
    assert not Deployment.objects.exists()
