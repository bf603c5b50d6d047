"""A host's reserve: labs never get it. What a whole-host booking, an admin or a deployment
outside reservations is held to is the host's capacity less the reserve of its machine
(as its agent reports it); shares are booked against the same; an admin sets the reserve
per host in the admin panel, the LABMGR_HOST_RESERVE_* settings being the default."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from labmgr.deployments import lifecycle
from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create
from labmgr.reservations.models import HostReserve
from labmgr.reservations.reserve import Limits, host_limits
from labmgr.reservations.selectors import host_capacity
from labmgr.reservations.services import deployment_budget
from tests.unit.labmgr.conftest import Dispatched, small_labfile
from tests.unit.labmgr.reservations.helpers import GIB, WHOLE, Book, Clock, share

MIB = 2**20
# What this machine's agent reports: 2 CPUs, 24 GiB, pid_max 32768.
MACHINE = {"cpus": 2, "memory": 24 * GIB, "pids": 32768}


@pytest.fixture
def reported(server: Host) -> Host:
    """The server once its agent reported the machine, its capacity filled in from it."""
    server.facts = {**server.facts, "capacity": MACHINE}
    server.cpus, server.memory, server.pids = 2, 24 * GIB, 32768
    server.save()
    return server


def test_labs_get_the_machine_less_the_default_reserve(reported: Host) -> None:
    # 10% of the CPUs, 512M and 1024 processes stay with the host.
    assert host_limits(reported) == Limits(Decimal("1.8"), 24 * GIB - 512 * MIB, 32768 - 1024)


def test_a_capacity_set_below_the_machine_is_what_labs_get(reported: Host) -> None:
    reported.memory = 8 * GIB

    assert host_limits(reported).memory == 8 * GIB


def test_a_hosts_own_reserve_replaces_the_settings_kind_by_kind(reported: Host) -> None:
    HostReserve.objects.create(host=reported, cpus=Decimal("0.5"), memory=2 * GIB)
    reported.refresh_from_db()

    assert host_limits(reported) == Limits(Decimal("1.5"), 22 * GIB, 32768 - 1024)


def test_the_settings_take_numbers_sizes_and_percentages(reported: Host, settings: Any) -> None:
    settings.LABMGR_HOST_RESERVE_CPUS = "1"
    settings.LABMGR_HOST_RESERVE_MEMORY = "4G"
    settings.LABMGR_HOST_RESERVE_PIDS = "50%"

    assert host_limits(reported) == Limits(Decimal("1.000"), 20 * GIB, 16384)


def test_without_a_report_of_the_machine_the_capacity_holds(server: Host) -> None:
    # The agent has not said how big the machine is: no reserve can be taken from it.
    assert host_limits(server) == Limits(Decimal(4), 8 * GIB, 1000)


def test_shares_are_booked_against_what_the_reserve_leaves(
    reported: Host, book: Book, alice: User, now: Clock
) -> None:
    assert host_capacity(reported).cpus == Decimal("1.8")

    with pytest.raises(ApplicationError) as caught:
        book(alice, 1, 2, share(cpus=2, memory=GIB, pids=10))

    assert caught.value.errors == {"cpus": ["Host server has 1.8 of cpus; you asked for 2."]}


def test_a_whole_host_booking_is_held_to_the_host_less_its_reserve(
    reported: Host, book: Book, alice: User, now: Clock
) -> None:
    mine = book(alice, 0, 2, WHOLE)

    budget = deployment_budget(host=reported, reservation=mine)

    assert budget["reservation"] == mine.pk
    assert (budget["cpus"], budget["memory"], budget["pids"]) == (
        1.8,
        24 * GIB - 512 * MIB,
        31744,
    )


def test_an_admins_deployment_is_held_to_the_host_less_its_reserve(
    reported: Host,
    root: User,
    now: Clock,
    dispatched: Dispatched,
    django_capture_on_commit_callbacks: Any,
) -> None:
    lab = lab_create(owner=root, labfile_tree=small_labfile("admins"))

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.deployment_deploy(lab=lab, actor=root)

    _, _, kwargs = dispatched.sent[-1]
    assert kwargs["budget"] == {
        "reservation": None,
        "cgroup": None,
        "cpus": 1.8,
        "memory": 24 * GIB - 512 * MIB,
        "pids": 31744,
    }


def test_a_reserve_that_leaves_labs_nothing_refuses_the_deploy_naming_the_host(
    reported: Host,
    book: Book,
    alice: User,
    alice_lab: Lab,
    now: Clock,
    dispatched: Dispatched,
) -> None:
    book(alice, 0, 2, WHOLE)
    HostReserve.objects.create(host=reported, memory=32 * GIB)

    with pytest.raises(ApplicationError) as caught:
        lifecycle.deployment_deploy(lab=alice_lab, actor=alice)

    assert caught.value.errors == {
        "host": [
            "Host server keeps all of its memory in reserve: labs get none. An admin lowers "
            "its reserve (Host reserves, in the admin panel)."
        ]
    }
    assert dispatched.sent == []


def test_the_admin_sees_what_labs_get_beside_a_hosts_reserve(
    client: Client, root: User, reported: Host
) -> None:
    reserve = HostReserve.objects.create(host=reported, memory=4 * GIB)
    client.force_login(root)

    page = client.get("/admin/reservations/hostreserve/").content.decode()
    form = client.get(f"/admin/reservations/hostreserve/{reserve.pk}/change/").content.decode()

    assert "1.8 CPUs, 20G, 31744 pids" in page
    assert "1.8 CPUs, 20G, 31744 pids" in form
