"""The host driver: a node on it makes no network namespace of its own and shares the
host's, with its interfaces, routes and local services, so only an admin may use it.
"""

from __future__ import annotations

from labplan.drivers.base import Driver


class Host(Driver):
    name = "host"
    shares_host_netns = True
    exclusive = True
    admin_only = (
        "only an admin may use the host network: its nodes share the host's "
        "network namespace, its interfaces and its local services"
    )


DRIVER = Host()
