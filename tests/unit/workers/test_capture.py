"""Captures on the agent's side, without root: a stand-in tcpdump writes a real pcap
file, so counting, the bounds, stopping and the upload run as they do on a host."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from labplan import labfile, naming
from labplan.compiler import compile_plan
from labplan.messages import ControlTask
from labplan.ops import SpawnNode
from tests.unit.workers.signing import FakeApp, host_signer, opened, signed
from workers.capture import tasks as capture_tasks
from workers.capture.pcap import PcapCounter, count_packets
from workers.capture.registry import CaptureRefused, Captures, Target, check
from workers.capture.tasks import capture_stop, interfaces_in
from workers.capture.watcher import Request
from workers.reports import JobLog
from workers.tasks import Inbox

# Writes a pcap file like `tcpdump -w FILE` does: one 100-byte packet every 10 ms, until
# SIGTERM (then it exits 0, as tcpdump does) or the `-c` count is reached. With `-d` it
# "compiles" the filter: any filter containing "bogus" is a syntax error.
FAKE_TCPDUMP = textwrap.dedent(
    """
    import signal, struct, sys, time
    args = sys.argv[1:]
    flt = args[args.index("--") + 1] if "--" in args else ""
    if "-d" in args:
        if "bogus" in flt:
            sys.stderr.write("tcpdump: syntax error in filter expression\\n")
            sys.exit(1)
        print("(000) ret #262144")
        sys.exit(0)
    if args[args.index("-i") + 1] == "gone0":
        sys.stderr.write("tcpdump: gone0: No such device exists\\n")
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    path = args[args.index("-w") + 1]
    with open(path, "wb", buffering=0) as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        sys.stderr.write("listening on eth0, link-type EN10MB\\n")
        while True:
            out.write(struct.pack("<IIII", 0, 0, 100, 100) + b"x" * 100)
            time.sleep(0.01)
    """
)

TWO_NODES = {
    "labfile": 1,
    "name": "cap",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.9.0.0/24"}},
    "nodes": {"a": {"networks": {"lan": {}}}, "b": {"networks": {"lan": {}}}},
}
TARGET = Target(pid=1, start=1, cgroup_procs=(), interfaces=("eth0",))


class Sent:
    """What the agent sent to the control plane and pushed on Redis."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.chunks: dict[str, list[bytes]] = {}

    def send(self, task: str, kwargs: dict[str, Any]) -> None:
        self.messages.append((task, kwargs))

    def upload(self, capture: str, chunks: Sequence[bytes]) -> None:
        self.chunks[capture] = list(chunks)

    def finished(self, capture: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for task, kwargs in self.messages:
                if task == ControlTask.CAPTURE_FINISHED and kwargs["capture"] == capture:
                    return kwargs
            time.sleep(0.05)
        raise AssertionError(f"capture {capture} never finished: {self.messages}")


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def captures(tmp_path: Path, sent: Sent) -> Iterator[Captures]:
    script = tmp_path / "fake_tcpdump.py"
    script.write_text(FAKE_TCPDUMP)
    running = Captures(
        tmp_path,
        sent.send,
        sent.upload,
        tcpdump=(sys.executable, str(script)),
        enter=lambda target: None,
        report_every=0.1,
    )
    yield running
    running.stop_all()


def request(capture: str = "c0ffee00", **changes: Any) -> Request:
    fields: dict[str, Any] = {
        "capture": capture,
        "token": "lm1",
        "node": "a",
        "interface": "eth0",
        "filter": "icmp",
        "max_bytes": 10 << 20,
        "max_seconds": 600.0,
    }
    fields.update(changes)
    return Request(**fields)


def pcap(*sizes: int) -> bytes:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    records = b"".join(struct.pack("<IIII", 0, 0, n, n) + b"p" * n for n in sizes)
    return header + records


# --- counting --------------------------------------------------------------------------


def test_the_counter_counts_whole_records_and_waits_for_a_cut_one() -> None:
    data = pcap(60, 98, 1500)
    counter = PcapCounter(limit=1 << 20)
    read = lambda length, offset: data[offset : offset + length]  # noqa: E731
    counter.feed(read, len(data) - 10)  # the last record is still being written
    assert (counter.packets, counter.end) == (2, 24 + 16 + 60 + 16 + 98)
    counter.feed(read, len(data))
    assert (counter.packets, counter.end) == (3, len(data))


def test_the_counter_keeps_only_the_records_that_end_within_the_size_bound() -> None:
    data = pcap(100, 100, 100)
    counter = PcapCounter(limit=24 + 2 * 116 + 50)
    counter.feed(lambda length, offset: data[offset : offset + length], len(data))
    assert (counter.kept_packets, counter.kept_end) == (2, 24 + 2 * 116)
    assert counter.packets == 3


def test_a_file_that_is_not_pcap_is_refused() -> None:
    with pytest.raises(ValueError, match="not a pcap file"):
        count_packets(b"GIF89a" + b"\0" * 40)


# --- checks ----------------------------------------------------------------------------


def test_the_interfaces_of_a_node_are_the_ones_its_plan_gives_it() -> None:
    plan = compile_plan(labfile.validate(TWO_NODES), deployment=7).for_host("local")
    assert plan is not None
    spawn = next(op for op in plan.ops if isinstance(op, SpawnNode) and op.node == "a")
    assert spawn.netns is not None and spawn.netns.startswith(naming.deployment_token(7))
    assert interfaces_in(plan.ops, spawn.netns) == ("eth0",)


def test_an_interface_the_node_does_not_have_is_refused_with_the_ones_it_has() -> None:
    with pytest.raises(CaptureRefused) as refused:
        check(request(interface="eth7"), TARGET)
    assert refused.value.field == "interface"
    assert refused.value.message == "node a has no interface 'eth7' (it has: eth0)"


@pytest.mark.parametrize("bad", ["icmp\nhost 1.2.3.4", "x" * 1025])
def test_a_filter_of_several_lines_or_too_long_is_refused(bad: str) -> None:
    with pytest.raises(CaptureRefused) as refused:
        check(request(filter=bad), TARGET)
    assert refused.value.field == "filter"


@pytest.mark.parametrize(("field", "value"), [("max_bytes", 0), ("max_seconds", 10**6)])
def test_bounds_outside_the_hard_limits_are_refused(field: str, value: int) -> None:
    with pytest.raises(CaptureRefused) as refused:
        check(request(**{field: value}), TARGET)
    assert refused.value.field == field


def test_a_capture_id_that_is_not_a_token_never_names_a_file() -> None:
    with pytest.raises(CaptureRefused) as refused:
        check(request(capture="../../etc"), TARGET)
    assert refused.value.field == "capture"


# --- running ---------------------------------------------------------------------------


def test_a_bad_filter_is_refused_with_tcpdumps_message(captures: Captures) -> None:
    with pytest.raises(CaptureRefused) as refused:
        captures.start(request(filter="icmp and bogus"), TARGET)
    assert refused.value.field == "filter"
    assert refused.value.message == "syntax error in filter expression"
    assert captures.running == {}


def test_tcpdump_refusing_the_interface_is_reported_on_the_interface(
    captures: Captures, tmp_path: Path
) -> None:
    target = Target(pid=1, start=1, cgroup_procs=(), interfaces=("gone0",))
    with pytest.raises(CaptureRefused) as refused:
        captures.start(request(interface="gone0"), target)
    assert (refused.value.field, refused.value.message) == (
        "interface",
        "gone0: No such device exists",
    )
    assert list((tmp_path / "run" / "lm1" / "captures").iterdir()) == []


def test_a_stopped_capture_sends_its_whole_records_and_leaves_no_file(
    captures: Captures, sent: Sent, tmp_path: Path
) -> None:
    captures.start(request(), TARGET)
    time.sleep(0.5)
    capture_stop(captures, capture="c0ffee00")
    finished = sent.finished("c0ffee00")
    data = b"".join(sent.chunks["c0ffee00"])
    assert finished["state"] == "stopped"
    assert finished["reason"] == "stopped on request"
    assert finished["packets"] == count_packets(data) > 5
    assert finished["bytes"] == len(data) == 24 + 116 * finished["packets"]
    progress = [k for t, k in sent.messages if t == "labmgr.control.capture_progress"]
    assert progress and progress[0]["state"] == "running"
    assert list((tmp_path / "run" / "lm1" / "captures").iterdir()) == []


def test_a_capture_stops_by_itself_at_its_size_bound(captures: Captures, sent: Sent) -> None:
    captures.start(request(max_bytes=24 + 116 * 10 + 50), TARGET)
    finished = sent.finished("c0ffee00")
    data = b"".join(sent.chunks["c0ffee00"])
    assert finished["state"] == "stopped"
    assert finished["reason"] == f"size limit reached ({24 + 116 * 10 + 50} bytes)"
    assert (finished["packets"], len(data)) == (10, 24 + 116 * 10)


def test_a_capture_stops_by_itself_at_its_time_bound(captures: Captures, sent: Sent) -> None:
    captures.start(request(max_seconds=0.5), TARGET)
    finished = sent.finished("c0ffee00")
    assert finished["reason"] == "time limit reached (0.5 s)"
    assert finished["packets"] > 0


def test_several_captures_run_at_once_and_each_gets_its_own_file(
    captures: Captures, sent: Sent
) -> None:
    captures.start(request("aaaaaaaa"), TARGET)
    captures.start(request("bbbbbbbb"), TARGET)
    captures.start(request("aaaaaaaa"), TARGET)  # delivered twice: still one
    assert sorted(captures.running) == ["aaaaaaaa", "bbbbbbbb"]
    time.sleep(0.3)
    for name in ("aaaaaaaa", "bbbbbbbb"):
        capture_stop(captures, capture=name)
        assert sent.finished(name)["packets"] == count_packets(b"".join(sent.chunks[name]))


def test_stopping_a_capture_the_agent_does_not_run_reports_it_failed(
    captures: Captures, sent: Sent
) -> None:
    capture_stop(captures, capture="deadbeef")
    finished = sent.finished("deadbeef")
    assert finished["state"] == "failed"
    assert finished["reason"] == "this host runs no such capture (its agent restarted?)"
    assert finished["chunks"] == 0


def test_tcpdumps_a_previous_agent_left_are_reaped_with_their_files(
    tmp_path: Path, sent: Sent
) -> None:
    tcpdump = tmp_path / "bin" / "tcpdump"  # a process named tcpdump, whatever it runs
    tcpdump.parent.mkdir()
    tcpdump.symlink_to(sys.executable)
    data = tmp_path / "agent"
    orphan_file = data / "run" / "lm1" / "captures" / "c0ffee00.pcap"
    orphan_file.parent.mkdir(parents=True)
    orphan_file.write_bytes(pcap(10))
    sleep = "import time; time.sleep(60)"
    orphan = subprocess.Popen([str(tcpdump), "-c", sleep, "-w", str(orphan_file)])
    other = subprocess.Popen([str(tcpdump), "-c", sleep, "-w", str(tmp_path / "mine.pcap")])
    try:
        time.sleep(0.2)
        reaped = Captures(data, sent.send, sent.upload).reap_orphans()
        assert reaped == [f"tcpdump {orphan.pid} writing {orphan_file}"]
        assert orphan.wait(timeout=5) == -9
        assert other.poll() is None
        assert not orphan_file.exists()
    finally:
        for proc in (orphan, other):
            proc.kill()
            proc.wait()


class NoJournal:
    def node(self, token: str, name: str) -> None:
        return None


def test_the_agent_answers_a_start_for_a_node_it_does_not_run_on_the_node_field(
    captures: Captures, sent: Sent, tmp_path: Path
) -> None:
    class AgentStub:
        send = sent.send
        executor = type("Executor", (), {"data_dir": tmp_path, "journal": NoJournal()})()
        jobs = JobLog(tmp_path / "jobs")

    app, agent = FakeApp(), AgentStub()
    signer = host_signer(tmp_path)
    capture_tasks.register(
        app, agent, inbox=Inbox(agent, signer), progress=sent.send, captures=captures
    )
    assert sorted(app.tasks) == ["labmgr.agent.capture_start", "labmgr.agent.capture_stop"]
    start = app.tasks["labmgr.agent.capture_start"]
    fields = {"capture": "c0ffee00c0ffee00c0ffee00c0ffee00", "token": "lm1", "node": "a"}
    bounds = {"interface": "eth0", "filter": "", "max_bytes": 1000, "max_seconds": 10}

    def answer(**kwargs: Any) -> Any:
        task, message = signed("labmgr.agent.capture_start", kwargs)
        return opened(start(task, **message), "labmgr.agent.capture_start.result")["value"]

    assert answer(deployment=1, **fields, **bounds) == {
        "ok": False,
        "field": "node",
        "error": "no running node 'a' in lm1",
    }
    assert answer(deployment=2, **fields, **bounds)["ok"] is False  # not lm1's id
    short = {**fields, "capture": "c0ffee"}
    assert answer(deployment=1, **short, **bounds)["field"] == "capture"  # guessable: refused
