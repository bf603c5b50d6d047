"""Fixtures of the page tests: a host with capacity to book (the reservations' clock,
`now`, is tests/unit/labmgr/conftest.py's)."""

from __future__ import annotations

import pytest

from labmgr.hosts.models import Host
from tests.unit.labmgr.reservations.helpers import GIB


@pytest.fixture
def server(db: None) -> Host:
    """A host with 4 CPUs, 8 GiB and 1,000 processes to lend."""
    return Host.objects.create(
        name="server", slug="server", status="online", cpus=4, memory=8 * GIB, pids=1000
    )
