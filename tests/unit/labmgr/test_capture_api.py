"""Captures through the REST API with the agent seam patched: what is checked before the
agent hears of a capture, what the agent's reports do, the download, and who may do what."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from labmgr.captures import dispatch as capture_dispatch
from labmgr.captures import services
from labmgr.captures.models import Capture
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_import
from tests.unit.labmgr.conftest import Dispatched

Api = Callable[[User | None], APIClient]
PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + (
    struct.pack("<IIII", 0, 0, 4, 4) + b"ping"
)


class FakeAgent:
    """Answers capture_start like an agent (or refuses, when told to); records jobs."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.stopped: list[str] = []
        self.answer: dict[str, Any] = {"ok": True, "field": "", "error": ""}

    def start(self, *, host: str, **kwargs: Any) -> Any:
        self.started.append(kwargs)
        return dict(self.answer)

    def stop(self, *, host: str, capture: str) -> None:
        self.stopped.append(capture)


class FakeRedis:
    def __init__(self) -> None:
        self.lists: dict[str, list[bytes]] = {}

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        return list(self.lists.get(key, []))

    def delete(self, key: str) -> None:
        self.lists.pop(key, None)


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> FakeAgent:
    fake = FakeAgent()
    monkeypatch.setattr(capture_dispatch, "start", fake.start)
    monkeypatch.setattr(capture_dispatch, "stop", fake.stop)
    return fake


@pytest.fixture
def fake_redis(monkeypatch: pytest.MonkeyPatch) -> FakeRedis:
    fake = FakeRedis()
    monkeypatch.setattr(services, "redis_client", lambda: fake)
    return fake


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    def call(client: APIClient, method: str, url: str, data: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(url, data, format="json")

    return call


def running(lab: Lab, user: User, run: Any, api: Api) -> Deployment:
    body = run(api(user), "post", f"/api/labs/{lab.pk}/deploy").json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    return Deployment.objects.get(pk=body["id"])


@pytest.fixture
def deployment(
    alice_lab: Lab, alice: User, online_host: Host, dispatched: Dispatched, run: Any, api: Api
) -> Deployment:
    return running(alice_lab, alice, run, api)


def url(deployment: Deployment, rest: str = "") -> str:
    return f"/api/deployments/{deployment.pk}/captures{rest}"


def start(api: Api, user: User, deployment: Deployment, **body: Any) -> Any:
    return api(user).post(url(deployment), {"node": "web", "interface": "eth0", **body}, "json")


def finish(
    capture: Capture,
    fake_redis: FakeRedis,
    data: bytes = PCAP,
    packets: int = 1,
    arrived: bytes | None = None,
) -> None:
    """The agent's end of a capture: its file on Redis (as it `arrived` there, by default
    as sent) and its report with the file's digest."""
    on_redis = data if arrived is None else arrived
    fake_redis.lists[f"labmgr:capture:{capture.key}:pcap"] = [on_redis[:30], on_redis[30:]]
    services.capture_finished_record(
        key=capture.key,
        state="stopped",
        packets=packets,
        bytes=len(data),
        reason="stopped on request",
        chunks=2,
        sha256=hashlib.sha256(data).hexdigest(),
    )


# --- starting --------------------------------------------------------------------------


def test_the_owner_starts_a_capture_with_the_default_bounds(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent
) -> None:
    response = start(api, alice, deployment, filter="  icmp  ")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["node"], body["interface"], body["filter"]) == ("web", "eth0", "icmp")
    assert (body["state"], body["packets"], body["pcap_url"]) == ("running", 0, None)
    assert (body["max_bytes"], body["max_seconds"]) == (10 << 20, 600)
    (job,) = agent.started
    key = Capture.objects.get().key
    assert job == {
        "capture": key,
        "deployment": deployment.pk,
        "token": deployment.token,
        "node": "web",
        "interface": "eth0",
        "filter": "icmp",
        "max_bytes": 10 << 20,
        "max_seconds": 600,
    }
    assert len(key) == 32


def test_a_filter_tcpdump_refuses_is_a_field_error_and_leaves_no_capture(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent
) -> None:
    agent.answer = {"ok": False, "field": "filter", "error": "syntax error in filter expression"}
    response = start(api, alice, deployment, filter="icmp and and")
    assert response.status_code == 400
    assert response.json()["errors"] == {"filter": ["filter: syntax error in filter expression"]}
    assert not Capture.objects.exists()


def test_an_interface_the_node_does_not_have_is_refused_before_the_agent_hears_of_it(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent
) -> None:
    response = start(api, alice, deployment, interface="eth9")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "interface": ["interface: node web has no interface 'eth9' (it has eth0)."]
    }
    missing = start(api, alice, deployment, node="nobody")
    assert missing.json()["errors"] == {"node": ["node: the deployment has no node 'nobody'."]}
    assert agent.started == []


def test_a_filter_of_several_lines_is_refused(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent
) -> None:
    response = start(api, alice, deployment, filter="icmp\n-w /etc/passwd")
    assert response.json()["errors"] == {
        "filter": ["filter: one line, without control characters."]
    }
    assert agent.started == []


def test_bounds_above_the_servers_limits_are_refused(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, settings: Any
) -> None:
    settings.LABMGR_CAPTURE_MAX_BYTES = 1000
    response = start(api, alice, deployment, max_bytes=1001, max_seconds=5)
    assert response.json()["errors"] == {"max_bytes": ["max_bytes: from 1 to 1000 bytes."]}
    assert start(api, alice, deployment, max_bytes=1000, max_seconds=5).status_code == 201
    assert agent.started[0]["max_bytes"] == 1000 and agent.started[0]["max_seconds"] == 5


def test_only_so_many_captures_run_at_once_in_a_deployment(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, settings: Any
) -> None:
    settings.LABMGR_CAPTURE_MAX_RUNNING = 2
    assert start(api, alice, deployment).status_code == 201
    assert start(api, alice, deployment).status_code == 201
    third = start(api, alice, deployment)
    assert third.status_code == 409
    assert third.json()["detail"] == (
        "2 captures already run in this deployment; stop one to start another."
    )


def test_a_deployment_that_is_not_running_takes_no_capture(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    deployment = Deployment.objects.get(pk=body["id"])
    response = start(api, alice, deployment)
    assert response.status_code == 409
    assert "only in a running deployment; this one is" in response.json()["detail"]


# --- reports, stop, download, delete ---------------------------------------------------


def test_progress_shows_in_the_list_and_the_end_brings_the_file(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, fake_redis: FakeRedis
) -> None:
    start(api, alice, deployment)
    capture = Capture.objects.get()
    services.capture_progress_record(key=capture.key, packets=3, bytes=300)
    (row,) = api(alice).get(url(deployment)).json()
    assert (row["state"], row["packets"], row["bytes"]) == ("running", 3, 300)
    finish(capture, fake_redis)
    (row,) = api(alice).get(url(deployment)).json()
    assert (row["state"], row["packets"], row["bytes"]) == ("stopped", 1, len(PCAP))
    assert row["reason"] == "stopped on request"
    assert row["pcap_url"].endswith(url(deployment, f"/{capture.pk}/pcap/"))
    download = api(alice).get(url(deployment, f"/{capture.pk}/pcap"))
    assert download.status_code == 200
    assert download["Content-Type"] == "application/vnd.tcpdump.pcap"
    assert download["Content-Disposition"].startswith('attachment; filename="demo-web-eth0-')
    assert download.content == PCAP
    assert fake_redis.lists == {}


def test_a_report_after_the_end_changes_nothing(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, fake_redis: FakeRedis
) -> None:
    start(api, alice, deployment)
    capture = Capture.objects.get()
    finish(capture, fake_redis)
    services.capture_progress_record(key=capture.key, packets=99, bytes=9999)
    services.capture_finished_record(
        key=capture.key, state="failed", packets=0, bytes=0, reason="again", chunks=0
    )
    capture.refresh_from_db()
    assert (capture.state, capture.packets, capture.reason) == ("stopped", 1, "stopped on request")


def test_a_file_lost_in_redis_fails_the_capture_in_plain_words(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, fake_redis: FakeRedis
) -> None:
    start(api, alice, deployment)
    capture = Capture.objects.get()
    services.capture_finished_record(
        key=capture.key, state="stopped", packets=5, bytes=500, reason="", chunks=3
    )
    (row,) = api(alice).get(url(deployment)).json()
    assert (row["state"], row["reason"], row["pcap_url"]) == (
        "failed",
        "the capture's file was lost on its way",
        None,
    )
    assert api(alice).get(url(deployment, f"/{capture.pk}/pcap")).status_code == 404


def test_a_file_changed_on_redis_fails_the_capture_and_nothing_of_it_is_kept(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, fake_redis: FakeRedis
) -> None:
    start(api, alice, deployment)
    capture = Capture.objects.get()
    forged = PCAP[:40] + b"\xff" * 8 + PCAP[48:]

    finish(capture, fake_redis, arrived=forged)

    (row,) = api(alice).get(url(deployment)).json()
    assert (row["state"], row["reason"], row["pcap_url"]) == (
        "failed",
        "the capture's file was changed on its way",
        None,
    )
    assert api(alice).get(url(deployment, f"/{capture.pk}/pcap")).status_code == 404


def test_stop_asks_the_agent_once(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent
) -> None:
    start(api, alice, deployment)
    capture = Capture.objects.get()
    first = api(alice).post(url(deployment, f"/{capture.pk}/stop"))
    again = api(alice).post(url(deployment, f"/{capture.pk}/stop"))
    assert (first.status_code, first.json()["state"]) == (202, "stopping")
    assert again.status_code == 202
    assert agent.stopped == [capture.key]


def test_deleting_a_running_capture_stops_it_and_forgets_it(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent
) -> None:
    start(api, alice, deployment)
    capture = Capture.objects.get()
    assert api(alice).delete(url(deployment, f"/{capture.pk}")).status_code == 204
    assert agent.stopped == [capture.key]
    assert api(alice).get(url(deployment, f"/{capture.pk}")).status_code == 404


def test_captures_go_with_their_lab(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, fake_redis: FakeRedis
) -> None:
    start(api, alice, deployment)
    finish(Capture.objects.get(), fake_redis)
    deployment.lab.delete()
    assert not Capture.objects.exists()


def test_silent_captures_fail_after_their_bound_and_old_ones_are_deleted(
    api: Api, alice: User, deployment: Deployment, agent: FakeAgent, fake_redis: FakeRedis
) -> None:
    start(api, alice, deployment, max_seconds=60)
    start(api, alice, deployment)
    silent, old = Capture.objects.order_by("pk")
    finish(old, fake_redis)
    Capture.objects.filter(pk=silent.pk).update(created=timezone.now() - timedelta(seconds=200))
    Capture.objects.filter(pk=old.pk).update(finished=timezone.now() - timedelta(days=8))
    (row,) = api(alice).get(url(deployment)).json()
    assert (row["id"], row["state"]) == (silent.pk, "failed")
    assert row["reason"] == "the host did not report the end of this capture"


# --- who may -----------------------------------------------------------------------------


def test_a_reader_of_a_shared_lab_lists_and_downloads_but_does_not_capture(
    api: Api,
    alice: User,
    bob: User,
    shared_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    agent: FakeAgent,
    fake_redis: FakeRedis,
) -> None:
    deployment = running(shared_lab, alice, run, api)
    start(api, alice, deployment)
    capture = Capture.objects.get()
    finish(capture, fake_redis)
    assert len(api(bob).get(url(deployment)).json()) == 1
    assert api(bob).get(url(deployment, f"/{capture.pk}/pcap")).content == PCAP
    refused = start(api, bob, deployment)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "This lab is shared with you to read; only its owner may capture."
    )
    assert api(bob).post(url(deployment, f"/{capture.pk}/stop")).status_code == 403
    assert api(bob).delete(url(deployment, f"/{capture.pk}")).status_code == 403


def test_others_are_told_nothing_exists(
    api: Api,
    alice: User,
    charlie: User,
    root: User,
    deployment: Deployment,
    agent: FakeAgent,
    fake_redis: FakeRedis,
) -> None:
    start(api, alice, deployment)
    capture = Capture.objects.get()
    finish(capture, fake_redis)
    for path in ("", f"/{capture.pk}", f"/{capture.pk}/pcap"):
        assert api(charlie).get(url(deployment, path)).status_code == 404
    assert start(api, charlie, deployment).status_code == 404
    assert api(None).get(url(deployment)).status_code in (401, 403)
    assert api(root).get(url(deployment, f"/{capture.pk}/pcap")).content == PCAP


PAIR = """\
labfile: 2
name: pair
networks: {lan: {driver: bridge, subnet: 10.10.0.0/24}}
nodes:
  r1: {networks: {lan: {}}}
  r2: {}
links:
  - endpoints: [r1:eth1, r2:eth0]
    ipv4: [10.0.12.1/30, 10.0.12.2/30]
"""


def test_a_links_interface_is_captured_like_any_other_of_its_node(
    api: Api, alice: User, online_host: Host, dispatched: Dispatched, run: Any, agent: FakeAgent
) -> None:
    deployment = running(lab_import(owner=alice, text=PAIR), alice, run, api)
    response = start(api, alice, deployment, node="r2", interface="eth0")
    assert response.status_code == 201, response.json()
    assert (agent.started[0]["node"], agent.started[0]["interface"]) == ("r2", "eth0")
    refused = start(api, alice, deployment, node="r1", interface="eth2")
    assert refused.json()["errors"] == {
        "interface": ["interface: node r1 has no interface 'eth2' (it has eth0, eth1)."]
    }
