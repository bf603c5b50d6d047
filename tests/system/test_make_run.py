"""`make run` as an admin starts it on a fresh machine (scripts/run, with a data directory,
ports and an agent state directory of the test's own): what it leaves on disk is private,
its Redis wants the password kept in the data directory, no secret is on a command line
any user of the host can read, and its agent serves only with the key the install made."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from tests.system.conftest import BIN, ROOT, free_port, wait_for


@dataclass
class Install:
    data: Path
    agent_data: Path
    base: str
    redis_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def password(self) -> str:
        return (self.data / "redis-password").read_text().strip()


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Install]:
    data, agent_data = tmp_path / "var", tmp_path / "agent"
    web_port, redis_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL", "LABMGR_SECRET_KEY")
    }
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}",
        LABMGR_DATA_DIR=str(data),
        LABMGR_AGENT_DATA_DIR=str(agent_data),
        LABMGR_AGENT_HOST=f"mr{os.getpid()}",
        LABMGR_PORT=str(web_port),
        LABMGR_REDIS_PORT=str(redis_port),
        LABMGR_WEB_WORKERS="1",
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    found = Install(data, agent_data, f"http://127.0.0.1:{web_port}", redis_port, process, log)
    try:
        wait_for(
            "make run to serve its login page",
            lambda: requests.get(found.base + "/login/", timeout=2).status_code == 200,
            timeout=120,
        )
        yield found
    except BaseException:
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def hosts(install: Install) -> list[list[str]]:
    """The hosts and their status, as the install's database holds them."""
    done = subprocess.run(
        [str(BIN / "python"), "manage.py", "shell", "-c", SHOW_HOSTS],
        cwd=ROOT,
        env={**os.environ, "LABMGR_DATA_DIR": str(install.data)},
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


SHOW_HOSTS = (
    "import json; from labmgr.hosts.models import Host; "
    "print(json.dumps([[h.slug, h.status] for h in Host.objects.all()]))"
)


def test_make_run_keeps_its_secrets_private_and_its_redis_behind_a_password(
    install: Install,
) -> None:
    data, slug = install.data, f"mr{os.getpid()}"
    # Its agent, registered with this install's key: its signed heartbeats count.
    wait_for("the host to come online", lambda: [slug, "online"] in hosts(install), timeout=60)

    assert mode(data) == 0o700 and mode(install.agent_data) == 0o700
    for name in ("labmgr.sqlite3", "secret_key", "admin-password", "redis-password", "Procfile"):
        assert mode(data / name) == 0o600, name
    assert mode(data / "redis") == 0o700 and mode(data / "redis" / "redis.conf") == 0o600
    assert mode(install.agent_data / "host.key") == 0o600
    for state in ("jobs", "journal"):
        if (install.agent_data / state).exists():
            assert mode(install.agent_data / state) == 0o700

    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=install.redis_port, socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=install.redis_port, password="guess", socket_timeout=2).ping()
    assert redis.Redis(port=install.redis_port, password=install.password()).ping()

    secrets = [install.password(), (install.agent_data / "host.key").read_text().strip()]
    procfile = (data / "Procfile").read_text()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert not any(secret in command_line for secret in secrets), command_line
    assert not any(secret in procfile for secret in secrets)
