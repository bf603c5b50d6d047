"""netem on a network's shaping, measured from inside a node on a kernel that has it (the
VM tier's): a delay shows in the ping round trip, a loss in the share of echoes lost, a
jitter in the qdisc the node's link carries."""

from __future__ import annotations

import re
from typing import Any

import pytest

from workers.facts import Facts

from .conftest import Lab

pytestmark = pytest.mark.vm

GATEWAY = "10.238.0.1"  # the lab bridge's own address: only the node's egress is shaped


def shaped(shaping: dict[str, str]) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "netem",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.238.0.0/24", "shaping": shaping}},
        "nodes": {"s": {"networks": {"lan": {}}}},
    }


@pytest.fixture(autouse=True)
def netem(facts: Facts) -> None:
    if "netem" not in facts.qdiscs:
        pytest.skip("kernel lacks netem")


def ping(lab: Lab, count: int, interval: str) -> str:
    done = lab.run(
        "s", "ping", "-n", "-q", f"-c{count}", f"-i{interval}", "-W2", GATEWAY, timeout=60
    )
    return done.stdout


def test_a_50ms_delay_shows_in_the_round_trip(build: Any) -> None:
    lab: Lab = build(shaped({"delay": "50ms"}))

    summary = ping(lab, 5, "0.2")

    # "rtt min/avg/max/mdev = 50.3/50.9/51.8/0.4 ms"; under emulation a little more.
    low, average, high = (float(v) for v in summary.split(" = ")[1].split("/")[:3])
    assert low >= 45 and average <= 120 and high <= 200, summary


def test_a_30_percent_loss_loses_about_that_share_of_100_echoes(build: Any) -> None:
    lab: Lab = build(shaped({"loss": "30%"}))

    summary = ping(lab, 100, "0.02")

    sent, received = (
        int(n) for n in re.findall(r"(\d+) (?:packets transmitted|received)", summary)
    )
    assert sent == 100
    # Binomial(100, 0.3) falls outside 10..52 lost about twice in a million runs.
    assert 10 <= sent - received <= 52, summary


def test_a_jitter_rides_on_the_delay_in_the_nodes_qdisc(build: Any) -> None:
    lab: Lab = build(shaped({"delay": "40ms", "jitter": "10ms"}))

    qdiscs = lab.run("s", "tc", "qdisc", "show", "dev", "eth0").stdout

    assert re.search(r"qdisc netem \S+ .*delay 40ms\s+10ms", qdiscs), qdiscs
