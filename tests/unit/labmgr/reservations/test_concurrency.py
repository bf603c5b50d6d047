"""Bookings sent at the same moment, each on its own database connection, never
overbook a host: the host row lock (PostgreSQL) or the IMMEDIATE transaction (SQLite)
makes the capacity checks take turns.

A pause between the check and the insert widens the race window: without the lock,
every thread would pass its check before any of them inserts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from labmgr.errors import Conflict
from labmgr.hosts.models import Host
from labmgr.reservations import services
from labmgr.reservations.services import Share, reservation_book
from tests.unit.labmgr.reservations.helpers import WHOLE, at, share

THREADS = 8
ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def slow_check(monkeypatch: pytest.MonkeyPatch) -> None:
    check = services._check_capacity

    def check_then_pause(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        time.sleep(0.05)

    monkeypatch.setattr(services, "_check_capacity", check_then_pause)


def race(users: list[User], attempt: Callable[[User], Any]) -> list[str]:
    """Run `attempt(user)` for every user at once, each thread on its own connection;
    the outcome of each: "booked", "refused" or the unexpected error."""
    barrier = threading.Barrier(len(users))
    outcomes: list[str] = []

    def run(user: User) -> None:
        try:
            barrier.wait()
            attempt(user)
            outcomes.append("booked")
        except Conflict:
            outcomes.append("refused")
        except Exception as exc:  # reported, not swallowed: the assertion shows it
            outcomes.append(f"error: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def book_at_once(host: Host, what: Share) -> list[str]:
    users = [User.objects.create_user(f"user{i}") for i in range(THREADS)]
    return race(
        users,
        lambda user: reservation_book(actor=user, host=host, start=at(1), end=at(2), share=what),
    )


MODULE = [sys.executable, "-m", "tests.unit.labmgr.reservations.race"]


@pytest.fixture(scope="module")
def race_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh SQLite file database with the host and THREADS users, outside pytest's."""
    data = tmp_path_factory.mktemp("race")
    env = {**os.environ, "LABMGR_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    subprocess.run([*MODULE, "setup", str(THREADS)], env=env, cwd=ROOT, check=True)
    return env


def race_processes(env: dict[str, str], kind: str, hour: int) -> list[str]:
    """THREADS processes book the same hour (`hour` hours from now) at once."""
    start = (django_now() + timedelta(hours=hour)).isoformat()
    end = (django_now() + timedelta(hours=hour + 1)).isoformat()
    go = str(time.time() + 4)  # every process has imported Django by then
    contenders = [
        subprocess.Popen(
            [*MODULE, "book", f"user{i}", go, start, end, kind],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(THREADS)
    ]
    return sorted(p.communicate(timeout=120)[0].strip() for p in contenders)


def django_now() -> Any:
    from django.utils import timezone

    return timezone.now()


def simultaneous(request: pytest.FixtureRequest, kind: str, hour: int) -> list[str]:
    """THREADS users book the same slot at once. On PostgreSQL, threads with a connection
    each; on SQLite, processes on a file database: the in-memory test database shares one
    cache between threads, whose table locks fail at once instead of waiting."""
    if connection.vendor == "sqlite":
        return race_processes(request.getfixturevalue("race_env"), kind, hour=hour)
    request.getfixturevalue("now")
    request.getfixturevalue("slow_check")
    what = WHOLE if kind == "whole" else share(cpus=1, memory=2**30, pids=10)
    return book_at_once(request.getfixturevalue("server"), what)


@pytest.mark.django_db(transaction=True)
def test_one_of_simultaneous_whole_host_bookings_wins(request: pytest.FixtureRequest) -> None:
    outcomes = simultaneous(request, "whole", hour=1)

    assert outcomes == ["booked"] + ["refused"] * (THREADS - 1)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_shares_fill_the_host_and_no_more(request: pytest.FixtureRequest) -> None:
    outcomes = simultaneous(request, "share", hour=3)  # the host has 4 CPUs to lend

    assert outcomes == ["booked"] * 4 + ["refused"] * (THREADS - 4)
