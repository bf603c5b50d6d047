"""One contender of the SQLite booking race, run as its own process on a file database.

    python -m tests.unit.labmgr.reservations.race setup
    python -m tests.unit.labmgr.reservations.race book USERNAME GO START END KIND

`LABMGR_DATA_DIR` names the data directory (its labmgr.sqlite3 is the database). `book`
waits until the Unix time GO, books the host "server" from START to END (ISO 8601) as
USERNAME, the whole host (KIND "whole") or one CPU of it ("share"), and prints "booked",
"refused" or the error. A pause between the capacity check and the insert widens the
race window, as in the threaded test.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from decimal import Decimal
from typing import Any


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labmgr.settings")
    import django

    django.setup()
    if argv[0] == "setup":
        setup(int(argv[1]))
    else:
        book(*argv[1:])


def setup(users: int) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from labmgr.hosts.models import Host

    call_command("migrate", verbosity=0)
    Host.objects.create(name="server", slug="server", cpus=4, memory=2**33, pids=1000)
    for i in range(users):
        User.objects.create_user(f"user{i}")


def book(username: str, go: str, start: str, end: str, kind: str) -> None:
    from django.contrib.auth.models import User

    from labmgr.errors import Conflict
    from labmgr.hosts.models import Host
    from labmgr.reservations import services

    check = services._check_capacity

    def check_then_pause(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        time.sleep(0.05)

    services._check_capacity = check_then_pause  # type: ignore[assignment]
    user = User.objects.get(username=username)
    host = Host.objects.get(slug="server")
    what = (
        services.Share(whole_host=True)
        if kind == "whole"
        else services.Share(False, Decimal(1), 2**30, 10)
    )
    time.sleep(max(0.0, float(go) - time.time()))
    try:
        services.reservation_book(
            actor=user,
            host=host,
            start=datetime.fromisoformat(start),
            end=datetime.fromisoformat(end),
            share=what,
        )
    except Conflict:
        print("refused")
    except Exception as exc:
        print(f"error: {exc!r}")
    else:
        print("booked")


if __name__ == "__main__":
    main(sys.argv[1:])
