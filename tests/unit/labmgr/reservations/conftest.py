"""Reservation fixtures: a host with capacity and a booking helper (the clock the test sets,
`now`, is tests/unit/labmgr/conftest.py's)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from labmgr.hosts.models import Host
from labmgr.reservations.models import Reservation
from labmgr.reservations.services import Share, reservation_book
from tests.unit.labmgr.reservations.helpers import GIB, Book, Clock, at, share


@pytest.fixture
def server(db: None) -> Host:
    """A host with 4 CPUs, 8 GiB and 1,000 processes to lend."""
    return Host.objects.create(
        name="server",
        slug="server",
        status="online",
        cpus=4,
        memory=8 * GIB,
        pids=1000,
        facts={
            "cgroup_mode": "v2",
            "cgroup_controllers": ["cpu", "io", "memory", "pids"],
            "link_kinds": ["veth", "bridge", "macvlan", "ipvlan", "vxlan"],
            "qdiscs": ["tbf", "htb", "netem"],
            "user_namespaces": True,
            "nftables": True,
        },
        last_seen=timezone.now(),
    )


@pytest.fixture
def book(server: Host, now: Clock) -> Book:
    """`book(user, start_hours, end_hours, share=..., **kwargs)` on the server."""

    def make(
        user: User, start: float, end: float, what: Share | None = None, **kw: Any
    ) -> Reservation:
        return reservation_book(
            actor=kw.pop("actor", user),
            owner=user,
            host=kw.pop("host", server),
            start=at(start),
            end=at(end),
            share=what or share(),
            **kw,
        )

    return make


@pytest.fixture(autouse=True)
def reservations_required(settings: Any) -> None:
    """The rule as shipped: a deployment needs its owner's active reservation."""
    settings.LABMGR_REQUIRE_RESERVATION = True
