"""Personas and helpers for the control plane's tests.

alice owns labs and shares some with the group "class-a"; bob is in "class-a"; charlie is
in no group; root is a superuser.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create
from labmgr.reservations import clock
from tests.unit.labmgr.reservations.helpers import T0, Clock

# The example of docs/labfile.md: every driver and every option.
CAMPUS_YAML = Path(__file__).parent / "campus.yaml"

SMALL_LABFILE: dict[str, Any] = {
    "labfile": 1,
    "name": "demo",
    "description": "Two nodes on one bridge",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.10.0.0/24"}},
    "nodes": {
        "web": {"networks": {"lan": {"ipv4": "10.10.0.10"}}, "limits": {"memory": "256M"}},
        "client": {"networks": {"lan": {}}, "command": ["sleep", "infinity"]},
    },
}


def pytest_configure(config: pytest.Config) -> None:
    # STATIC_ROOT exists only after collectstatic; the tests serve from the finders.
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")


def small_labfile(name: str = "demo", **changes: Any) -> dict[str, Any]:
    tree = copy.deepcopy(SMALL_LABFILE)
    tree["name"] = name
    tree.update(changes)
    return tree


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    # The personas' passwords are not what these tests are about; PBKDF2 costs ~0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def single_user_install(settings: Any) -> None:
    # Deploying outside a reservation is what a single-user install does; the rule that a
    # deployment needs its owner's reservation is tested in reservations/ (which turns it
    # back on) and in deployments/test_lifecycle_api.py.
    settings.LABMGR_REQUIRE_RESERVATION = False


@pytest.fixture(autouse=True)
def memory_channel_layer(settings: Any) -> None:
    # Events go to an in-memory layer; consumer tests read them from there.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The reservations' clock, stopped at T0 (a Monday, 09:00 UTC) until the test moves it."""
    fake = Clock(T0)
    monkeypatch.setattr(clock, "now", fake)
    return fake


@pytest.fixture
def class_a(db: None) -> Group:
    return Group.objects.create(name="class-a")


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", "alice@example.org", "alice-password")


@pytest.fixture
def bob(class_a: Group) -> User:
    user = User.objects.create_user("bob", "bob@example.org", "bob-password")
    user.groups.add(class_a)
    return user


@pytest.fixture
def charlie(db: None) -> User:
    return User.objects.create_user("charlie", "charlie@example.org", "charlie-password")


@pytest.fixture
def root(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.org", "root-password")


@pytest.fixture
def alice_lab(alice: User) -> Lab:
    return lab_create(owner=alice, labfile_tree=small_labfile("demo"))


@pytest.fixture
def shared_lab(alice: User, class_a: Group) -> Lab:
    return lab_create(owner=alice, labfile_tree=small_labfile("shared"), shared_with=["class-a"])


@pytest.fixture
def labfile_tree() -> Callable[..., dict[str, Any]]:
    """`labfile_tree(name, **top_level_changes)`: a fresh copy of a small valid labfile."""
    return small_labfile


@pytest.fixture
def campus_tree() -> dict[str, Any]:
    tree: dict[str, Any] = yaml.safe_load(CAMPUS_YAML.read_text())
    return tree


@pytest.fixture
def api() -> Callable[[User | None], APIClient]:
    def client_for(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


# Facts of a host whose kernel has everything (as `python -m workers facts` prints them).
FULL_FACTS: dict[str, Any] = {
    "kernel": "6.1.0",
    "cgroup_mode": "v2",
    "cgroup_controllers": ["cpu", "io", "memory", "pids"],
    "link_kinds": ["veth", "bridge", "macvlan", "ipvlan", "vxlan"],
    "qdiscs": ["tbf", "htb", "netem"],
    "user_namespaces": True,
    "nftables": True,
    "iptables": True,
}


class Dispatched:
    """Records what would have been sent to host agents, as (task, host, kwargs)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.exec_result: dict[str, Any] = {"exit": 0, "stdout": "", "stderr": ""}
        # The agent's answer to a live change: all made, unless a test says otherwise.
        self.live_result: dict[str, Any] = {
            "ok": True,
            "error": "",
            "done": 1,
            "stopped": [],
            "seconds": 0.002,
        }

    def tasks(self) -> list[str]:
        return [task for task, _, _ in self.sent]


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> Dispatched:
    """Patches the dispatch seam: nothing reaches a broker."""
    from labmgr.deployments import dispatch

    record = Dispatched()

    def recorder(task: str) -> Callable[..., Any]:
        def send(*, host: str, **kwargs: Any) -> Any:
            record.sent.append((task, host, kwargs))
            answers = {"exec": record.exec_result, "live": record.live_result}
            return answers.get(task)

        return send

    for task in ("apply", "destroy", "check", "sweep", "terminal_open", "exec_", "live"):
        monkeypatch.setattr(dispatch, task, recorder(task.rstrip("_")))
    return record


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Runs a request and the after-commit work it scheduled (events, dispatch)."""

    def call(client: APIClient, method: str, url: str, data: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(url, data, format="json")

    return call


@pytest.fixture
def online_host(db: None) -> Any:
    from django.utils import timezone

    from labmgr.hosts.models import Host

    return Host.objects.create(
        name="local",
        slug="local",
        key="ab" * 32,
        status="online",
        facts=dict(FULL_FACTS),
        last_seen=timezone.now(),
    )


class Broker:
    """Stands for Redis between the control plane and registered hosts' agents: what the
    control plane sent, opened with each host's key as its agent would, and answers
    signed as the agent would sign them (`answer`: what the agent's job returns)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []
        self.envelopes: list[dict[str, Any]] = []
        self.answer: Any = None

    def send_task(self, name: str, *, kwargs: dict[str, Any], task_id: str, queue: str) -> Any:
        import time

        from labmgr.hosts.models import Host
        from labplan import envelope
        from labplan.messages import HOST_QUEUE_PREFIX

        slug = queue.removeprefix(HOST_QUEUE_PREFIX)
        key = bytes.fromhex(Host.objects.get(slug=slug).key)
        opened = envelope.open_(
            kwargs[envelope.FIELD],
            [key],
            task=name,
            host=slug,
            now=time.time(),
            max_age=60,
            id=task_id,
        )
        self.sent.append((name, opened.kwargs, queue))
        self.envelopes.append(kwargs[envelope.FIELD])
        answer = self.answer
        if isinstance(answer, Exception):
            return BrokerResult(task_id, answer)
        signed = envelope.seal(
            key,
            task=envelope.result_task(name),
            host=slug,
            id=task_id,
            issued=time.time(),
            kwargs={"value": answer},
        )
        return BrokerResult(task_id, signed)


class BrokerResult:
    def __init__(self, task_id: str, outcome: Any) -> None:
        self.id = task_id
        self.outcome = outcome
        self.forgotten = False

    def get(self, timeout: float, **kwargs: Any) -> Any:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def forget(self) -> None:
        self.forgotten = True


@pytest.fixture
def broker(db: None, monkeypatch: pytest.MonkeyPatch) -> Broker:
    """Registered hosts lab-1 and lab-2, and a broker in place of Redis."""
    from labmgr.hosts import trust

    for slug in ("lab-1", "lab-2"):
        trust.host_register(slug=slug)
    fake = Broker()
    monkeypatch.setattr(trust.app, "send_task", fake.send_task)
    return fake
