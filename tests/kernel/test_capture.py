"""Real tcpdump in a real node: pings between two nodes are captured, the pcap holds them,
and tearing the lab down ends a capture left running without leaving a process or file."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.workers.test_capture import Sent
from workers.capture.registry import CaptureRefused, Captures, Target
from workers.capture.tasks import capture_stop, node_target
from workers.capture.watcher import Request
from workers.kernel.cgroups import Cgroups

from .conftest import Lab

PAIR = {
    "labfile": 1,
    "name": "capture",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.246.0.0/24"}},
    "nodes": {
        "a": {"networks": {"lan": {"ipv4": "10.246.0.10"}}},
        "b": {"networks": {"lan": {"ipv4": "10.246.0.11"}}},
    },
}


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def captures(data_dir: Path, sent: Sent) -> Iterator[Captures]:
    running = Captures(data_dir, sent.send, sent.upload, report_every=0.2)
    yield running
    running.stop_all()


def request(lab: Lab, capture: str, node: str = "a", **changes: Any) -> Request:
    fields: dict[str, Any] = {
        "capture": capture,
        "token": lab.token,
        "node": node,
        "interface": "eth0",
        "filter": "icmp",
        "max_bytes": 10 << 20,
        "max_seconds": 60.0,
    }
    fields.update(changes)
    return Request(**fields)


def target(lab: Lab, node: str) -> Target:
    found = node_target(lab.executor.journal, lab.token, node)
    assert found is not None
    return found


def icmp_types(pcap: bytes) -> list[int]:
    """The ICMP type of every IPv4 ICMP packet of an Ethernet pcap file."""
    order = "<" if pcap[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    (linktype,) = struct.unpack_from(order + "I", pcap, 20)
    assert linktype == 1  # Ethernet
    types, offset = [], 24
    while offset + 16 <= len(pcap):
        (length,) = struct.unpack_from(order + "I", pcap, offset + 8)
        frame = pcap[offset + 16 : offset + 16 + length]
        offset += 16 + length
        if frame[12:14] == b"\x08\x00" and frame[23] == 1:
            header = (frame[14] & 0x0F) * 4
            types.append(frame[14 + header])
    return types


def test_pings_between_two_nodes_are_captured_in_the_pcap(
    build: Any, captures: Captures, sent: Sent
) -> None:
    lab = build(PAIR)
    where = target(lab, "a")
    assert where.interfaces == ("eth0",)
    captures.start(request(lab, "kerneltestcap01"), where)
    tcpdump = captures.running["kerneltestcap01"].proc.pid
    procs = Cgroups().procs_files(lab.cgroup("a"))
    assert all(str(tcpdump) in p.read_text().split() for p in procs)
    assert lab.ping("a", "10.246.0.11")
    time.sleep(0.5)
    capture_stop(captures, capture="kerneltestcap01")
    finished = sent.finished("kerneltestcap01")
    pcap = b"".join(sent.chunks["kerneltestcap01"])
    types = icmp_types(pcap)
    assert finished["state"] == "stopped"
    assert finished["packets"] == len(types) >= 2
    # Echo requests and their replies (a first echo on a fresh link may go unanswered).
    assert types.count(8) >= types.count(0) >= 1
    assert not os.path.exists(f"/proc/{tcpdump}")
    progress = [k for t, k in sent.messages if t == "labmgr.control.capture_progress"]
    assert progress and progress[-1]["packets"] >= 0


def test_a_bad_filter_is_refused_with_tcpdumps_words(build: Any, captures: Captures) -> None:
    lab = build(PAIR)
    with pytest.raises(CaptureRefused) as refused:
        captures.start(request(lab, "kerneltestcap02", filter="icmp and and"), target(lab, "a"))
    assert refused.value.field == "filter"
    assert refused.value.message == "can't parse filter expression: syntax error"


def test_destroying_the_lab_ends_a_running_capture_and_leaves_nothing(
    build: Any, captures: Captures, sent: Sent, data_dir: Path
) -> None:
    lab = build(PAIR)
    captures.start(request(lab, "kerneltestcap03", node="b", filter=""), target(lab, "b"))
    tcpdump = captures.running["kerneltestcap03"].proc.pid
    assert lab.ping("a", "10.246.0.11")
    lab.executor.destroy(lab.token)
    finished = sent.finished("kerneltestcap03")
    assert finished["state"] == "stopped"
    assert finished["reason"] == "the node stopped (lab destroyed or node replaced)"
    assert 8 in icmp_types(b"".join(sent.chunks["kerneltestcap03"]))
    assert not os.path.exists(f"/proc/{tcpdump}")
    assert not (data_dir / "run" / lab.token).exists()
