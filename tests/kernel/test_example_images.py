"""The gallery's image labs, as their comments say to run them: the images built on this
host from Debian's packages (`python -m workers image build`, mmdebstrap then umoci), then
the labs deployed from examples/ as they are: three FRR routers whose OSPF routes
converge (on bridges, and dual-stack on point-to-point links), and an iperf3 run over a
link shaped to 20 Mbit/s."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.imagekit import debian_mirror_answers
from workers.images.store import ImageStore

from .conftest import Lab

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.skipif(not debian_mirror_answers(), reason="no Debian mirror reachable")


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    return data


def build_as_the_example_says(data_dir: Path, name: str, packages: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers",
            "image",
            "build",
            name,
            "--debian",
            "bookworm",
            "--packages",
            packages,
        ],
        env={
            "LABMGR_AGENT_DATA_DIR": str(data_dir),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("example-images")


@pytest.fixture
def data_dir(store_dir: Path) -> Path:
    """The `build` fixture's agent uses the store the images were built into."""
    return store_dir


def until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def via(routes: str, destination: str) -> str | None:
    """The next hop `ip route` gives for a destination ("nhid N" may come between)."""
    found = re.search(rf"^{re.escape(destination)} (?:nhid \d+ )?via (\S+)", routes, re.M)
    return found.group(1) if found else None


def test_the_ospf_triangle_converges_and_routes_around_a_lost_link(
    store_dir: Path, build: Any
) -> None:
    build_as_the_example_says(store_dir, "frr-local:1", "frr,iproute2,iputils-ping,procps")
    assert ImageStore(store_dir / "images").lookup("frr-local:1") is not None
    lab: Lab = build(example("ospf-triangle"))

    def ospf_routes(node: str) -> str:
        return lab.run(node, "ip", "route", "show", "proto", "ospf").stdout

    # Converged: each loopback through its own link (an adjacency that comes up first
    # may carry both for a moment).
    until(
        "r1's OSPF routes to both loopbacks over the direct links",
        lambda: (
            (r := ospf_routes("r1"))
            and via(r, "10.255.0.2") == "10.0.12.2"
            and via(r, "10.255.0.3") == "10.0.13.3"
        ),
    )
    # Loopback to loopback, once r3 has its route back too.
    until(
        "a ping from r1's loopback to r3's",
        lambda: (
            lab.run("r1", "ping", "-c1", "-W1", "-I", "10.255.0.1", "10.255.0.3").returncode == 0
        ),
        timeout=30,
    )

    # r3's link to r1 goes down: r1 reaches r3's loopback through r2.
    link = lab.run("r3", "sh", "-c", "ip -o addr show | grep 10.0.13.3 | cut -d' ' -f2")
    assert lab.run("r3", "ip", "link", "set", link.stdout.strip(), "down").returncode == 0
    until(
        "r1's route to r3 through r2",
        lambda: via(ospf_routes("r1"), "10.255.0.3") == "10.0.12.2",
        timeout=30,
    )


def test_iperf3_over_the_shaped_link_measures_about_its_rate(store_dir: Path, build: Any) -> None:
    build_as_the_example_says(store_dir, "iperf3-local:1", "iperf3")
    lab: Lab = build(example("iperf3-shaped"))

    def measured(*extra: str) -> float:
        run = lab.run("client", "iperf3", "-c", "server", "-t", "3", "-J", *extra, timeout=30)
        assert run.returncode == 0, run.stdout + run.stderr
        end = json.loads(run.stdout)["end"]
        return float(end["sum_received"]["bits_per_second"]) / 1e6

    until("the server to listen", lambda: lab.run("client", "sh", "-c", "true").returncode == 0)
    time.sleep(1)
    forward, reverse = measured(), measured("-R")

    # 20 Mbit/s of tbf, less the headers iperf3 does not count: 15 to 21.
    assert 15 <= forward <= 21, forward
    assert 15 <= reverse <= 21, reverse


def frr_image(store_dir: Path) -> None:
    """The FRR image the routing examples run, built as their comments say unless this
    module built it already."""
    if ImageStore(store_dir / "images").lookup("frr-local:1") is None:
        build_as_the_example_says(store_dir, "frr-local:1", "frr,iproute2,iputils-ping,procps")


def routes(lab: Lab, node: str, family: str, proto: str) -> str:
    return lab.run(node, "ip", family, "route", "show", "proto", proto).stdout


def pings(lab: Lab, node: str, source: str, destination: str) -> bool:
    family = "-6" if ":" in destination else "-4"
    run = lab.run(node, "ping", family, "-c1", "-W1", "-I", source, destination)
    return run.returncode == 0


def test_ospf_on_dual_stack_links_converges_in_both_families(store_dir: Path, build: Any) -> None:
    frr_image(store_dir)
    lab: Lab = build(example("ospf-dualstack"))

    until(
        "r1's OSPFv2 routes to both loopbacks over the direct links",
        lambda: (
            (r := routes(lab, "r1", "-4", "ospf"))
            and via(r, "10.255.0.2") == "10.0.12.2"
            and via(r, "10.255.0.3") == "10.0.13.2"
        ),
    )
    # OSPFv3's next hops are the neighbours' link-local addresses (fe80::ID:N).
    until(
        "r1's OSPFv3 routes to both loopbacks",
        lambda: (
            (r := routes(lab, "r1", "-6", "ospf"))
            and via(r, "fd00:255::2") == "fe80::2:1"
            and via(r, "fd00:255::3") == "fe80::3:2"
        ),
    )
    until(
        "an IPv6 ping loopback to loopback", lambda: pings(lab, "r1", "fd00:255::1", "fd00:255::3")
    )

    # r3's link to r2 goes down: r2 reaches r3's loopbacks through r1, in both families.
    assert lab.run("r3", "ip", "link", "set", "eth1", "down").returncode == 0
    until(
        "r2's routes to r3 through r1",
        lambda: (
            via(routes(lab, "r2", "-4", "ospf"), "10.255.0.3") == "10.0.12.1"
            and via(routes(lab, "r2", "-6", "ospf"), "fd00:255::3") == "fe80::1:1"
        ),
        timeout=30,
    )
    until("r2 to r3's loopback, around", lambda: pings(lab, "r2", "fd00:255::2", "fd00:255::3"))


def test_ebgp_on_dual_stack_links_carries_both_families(store_dir: Path, build: Any) -> None:
    frr_image(store_dir)
    lab: Lab = build(example("bgp-dualstack"))

    until(
        "r1's BGP routes to both loopbacks, IPv4 and IPv6, over the direct links",
        lambda: (
            via(routes(lab, "r1", "-4", "bgp"), "10.255.0.2") == "10.0.12.2"
            and via(routes(lab, "r1", "-4", "bgp"), "10.255.0.3") == "10.0.13.2"
            # IPv6 routes go via the neighbour's link-local address (fe80::ID:N).
            and via(routes(lab, "r1", "-6", "bgp"), "fd00:255::2") == "fe80::2:1"
            and via(routes(lab, "r1", "-6", "bgp"), "fd00:255::3") == "fe80::3:2"
        ),
    )
    until("an IPv4 ping loopback to loopback", lambda: pings(lab, "r1", "10.255.0.1", "10.255.0.2"))
    until(
        "an IPv6 ping loopback to loopback", lambda: pings(lab, "r1", "fd00:255::1", "fd00:255::3")
    )

    # r1's link to r2 goes down: its routes to r2 go through r3, the AS path longer.
    assert lab.run("r1", "ip", "link", "set", "eth1", "down").returncode == 0
    until(
        "r1's routes to r2 through r3",
        lambda: (
            via(routes(lab, "r1", "-4", "bgp"), "10.255.0.2") == "10.0.13.2"
            and via(routes(lab, "r1", "-6", "bgp"), "fd00:255::2") == "fe80::3:2"
        ),
        timeout=30,
    )
