"""A containerlab topology, imported, runs on the real kernel: its links carry the
addresses its exec commands set, its bridge node is a bridge of the lab, and its nodes
reach each other over both."""

from __future__ import annotations

from collections.abc import Callable

from labplan.export import dump
from labplan.interop import to_labfile
from labplan.labfile import validate

from .conftest import Lab

TOPOLOGY = """
name: clab-kernel
mgmt:
  ipv4-subnet: 10.213.40.0/24
topology:
  nodes:
    r1:
      kind: linux
      exec:
        - ip addr add 10.213.12.1/30 dev eth1
        - ip route add 10.213.23.0/30 via 10.213.12.2
    r2:
      kind: linux
      exec: [ip addr add 10.213.12.2/30 dev eth1]
    pc1:
      kind: linux
      exec: [ip addr add 10.213.41.10/24 dev eth1]
    pc2:
      kind: linux
      exec: [ip addr add 10.213.41.11/24 dev eth1, hostname -s]
    sw: {kind: bridge}
  links:
    - endpoints: [r1:eth1, r2:eth1]
    - endpoints: [pc1:eth1, sw:p1]
    - endpoints: [pc2:eth1, sw:p2]
"""


def test_an_imported_containerlab_lab_runs(build: Callable[..., Lab]) -> None:
    lab = build(dump(validate(to_labfile(TOPOLOGY).tree)))

    assert "10.213.12.1/30" in lab.run("r1", "ip", "-br", "address", "show", "eth1").stdout
    assert lab.run("r1", "ping", "-c1", "-W2", "10.213.12.2").returncode == 0
    assert "10.213.23.0/30 via 10.213.12.2" in lab.run("r1", "ip", "route").stdout
    assert lab.run("pc1", "ping", "-c1", "-W2", "10.213.41.11").returncode == 0
    # The management network joins every node on eth0, as containerlab's does.
    assert "10.213.40." in lab.run("pc2", "ip", "-br", "address", "show", "eth0").stdout
