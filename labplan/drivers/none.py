"""The none driver: a node on it gets a network namespace with loopback only."""

from __future__ import annotations

from labplan.drivers.base import Driver


class NoNetwork(Driver):
    name = "none"
    exclusive = True


DRIVER = NoNetwork()
