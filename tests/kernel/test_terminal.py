"""A shell on a pty inside a real node, relayed through a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labplan.messages import terminal_keys
from workers.terminal import Terminals

from .conftest import Lab
from .test_agent_service import RedisServer, redis_server  # noqa: F401  (fixture)

NODE = {
    "labfile": 1,
    "name": "term",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.247.0.0/24"}},
    "nodes": {"box": {"networks": {"lan": {}}}},
}


@pytest.fixture
def terminals(redis_server: RedisServer, data_dir: Path) -> Iterator[Terminals]:  # noqa: F811
    opened = Terminals(redis_server.url, data_dir, idle=3.0)
    yield opened
    opened.close_all()


def read_until(server: RedisServer, session: str, wanted: bytes, timeout: float = 10) -> bytes:
    """Output frames of the session until `wanted` shows up (or the end frame)."""
    _, out_key = terminal_keys(session)
    client = server.client()
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = client.blpop([out_key], timeout=1)
        if item is None:
            continue
        if item[1] == b"":
            return seen + b"<end>"
        seen += item[1]
        if wanted in seen:
            return seen
    raise AssertionError(f"{wanted!r} not in {seen!r}")


def open_shell(lab: Lab, terminals: Terminals, session: str) -> None:
    record = lab.executor.journal.read(lab.token)
    assert record is not None
    from workers.agent import Agent

    agent = Agent(lab.executor, lambda task, kwargs: None, "local", terminals=terminals)
    assert agent.terminal_open(session, lab.token, "box", 80, 24)


def test_a_terminal_runs_commands_in_the_node_resizes_and_ends_on_an_empty_frame(
    build: Any,
    terminals: Terminals,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    lab: Lab = build(NODE)
    in_key, out_key = terminal_keys("s1")
    open_shell(lab, terminals, "s1")
    client = redis_server.client()

    client.rpush(in_key, b"hostname; echo $((6*7))\n")
    seen = read_until(redis_server, "s1", b"42")
    client.rpush(in_key, b"echo unread\n")
    time.sleep(0.5)
    unread_ttl = client.ttl(out_key)
    client.rpush(in_key, b'{"resize": [100, 30]}')
    client.rpush(in_key, b"stty size\n")
    seen += read_until(redis_server, "s1", b"30 100")
    client.rpush(in_key, b"")

    assert b"box" in seen
    assert read_until(redis_server, "s1", b"never").endswith(b"<end>")
    assert 0 < unread_ttl <= 3  # keys expire: nothing stays behind in Redis


def test_ctrl_c_in_a_terminal_stops_the_command_and_keeps_the_shell(
    build: Any,
    terminals: Terminals,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    lab: Lab = build(NODE | {"networks": {"lan": {"driver": "bridge", "subnet": "10.246.0.0/24"}}})
    in_key, _ = terminal_keys("s4")
    open_shell(lab, terminals, "s4")
    client = redis_server.client()

    client.rpush(in_key, b"sleep 60; echo slept\n")
    # ^C must find sleep in the foreground: wait until it runs (a busy machine is slow).
    deadline = time.monotonic() + 15
    while lab.run("box", "pgrep", "-x", "sleep").returncode != 0:
        assert time.monotonic() < deadline, "sleep never started in the node"
        time.sleep(0.05)
    client.rpush(in_key, b"\x03")
    client.rpush(in_key, b"echo $((6*9))\n")

    seen = read_until(redis_server, "s4", b"54", timeout=10)
    assert b"\nslept" not in seen  # the command line is echoed; its output never came


def test_an_idle_terminal_is_closed_and_the_shell_ends(
    build: Any,
    terminals: Terminals,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    lab: Lab = build(NODE | {"networks": {"lan": {"driver": "bridge", "subnet": "10.248.0.0/24"}}})
    open_shell(lab, terminals, "s2")
    session = terminals.sessions["s2"]

    output = read_until(redis_server, "s2", b"never", timeout=15)

    assert output.endswith(b"<end>")
    assert session.proc.poll() is not None


def test_destroying_the_lab_closes_its_terminals(
    build: Any,
    terminals: Terminals,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    lab: Lab = build(NODE | {"networks": {"lan": {"driver": "bridge", "subnet": "10.249.0.0/24"}}})
    open_shell(lab, terminals, "s3")

    terminals.close_token(lab.token)

    assert read_until(redis_server, "s3", b"never").endswith(b"<end>")
    assert terminals.sessions["s3"].proc.poll() is not None
