"""Scenario runs with the dispatch seam patched and the scenarios' clock moved by hand:
steps run at their time by the beat's tick, pause and resume, stop restores, a destroy
ends the run, results are kept and exported, and only the owner runs one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from labmgr.deployments import scenarios
from labmgr.deployments.models import Deployment, ScenarioRun
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.services import lab_create
from tests.unit.labmgr.conftest import Dispatched, small_labfile

Api = Callable[[User | None], APIClient]

FLAP = [
    {"at": "0s", "set": {"interface": "web:eth0", "loss": "30%"}},
    {"at": "10s", "down": "web:eth0"},
    {"at": "20s", "exec": {"node": "client", "command": ["ping", "-c1", "web"]}},
    {"at": "30s", "restore": "all"},
]


class Clock:
    def __init__(self) -> None:
        self.at = timezone.now()

    def __call__(self) -> datetime:
        return self.at

    def forward(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(scenarios, "now", fake)
    return fake


@pytest.fixture
def running(
    alice: User, api: Api, online_host: Host, dispatched: Dispatched, run: Any
) -> Deployment:
    tree = small_labfile("flappy", labfile=2, scenarios={"flap": FLAP})
    lab = lab_create(owner=alice, labfile_tree=tree)
    body = run(api(alice), "post", f"/api/labs/{lab.pk}/deploy").json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    dispatched.sent.clear()
    return Deployment.objects.get(pk=body["id"])


def sent(dispatched: Dispatched) -> list[str]:
    return [task for task, _, _ in dispatched.sent]


def test_a_labfile_scenario_runs_each_step_at_its_time(
    api: Api, alice: User, running: Deployment, dispatched: Dispatched, run: Any, clock: Clock
) -> None:
    response = run(
        api(alice), "post", f"/api/deployments/{running.pk}/scenarios", {"scenario": "flap"}
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["state"], body["actor"], len(body["steps"])) == (
        "flap",
        "running",
        "alice",
        4,
    )

    assert scenarios.scenarios_tick() == 1  # the 0 s step, nothing more
    assert sent(dispatched) == ["live"]
    clock.forward(9.5)
    assert scenarios.scenarios_tick() == 0
    clock.forward(0.5)
    assert scenarios.scenarios_tick() == 1
    dispatched.exec_result = {"exit": 1, "stdout": "", "stderr": "unreachable\n"}
    clock.forward(25)
    assert scenarios.scenarios_tick() == 2  # late steps run in order, at once
    assert scenarios.scenarios_tick() == 0

    done = ScenarioRun.objects.get(pk=body["id"])
    assert done.state == "finished" and done.position == 4
    assert [r["ok"] for r in done.results] == [True, True, False, True]
    assert done.results[0]["message"] == "set loss 30% on interface web:eth0"
    assert done.results[2]["message"] == "client: ping -c1 web exited 1"
    assert done.results[2]["output"] == "unreachable\n"
    assert sent(dispatched) == ["live", "live", "exec", "live"]
    running.refresh_from_db()
    assert running.live == {"impairments": {}, "down": [], "stopped": []}
    steps = running.steps.filter(name="live").values_list("actor", flat=True)
    assert list(steps) == ["alice"] * 3

    exported = run(api(alice), "get", f"/api/scenario-runs/{body['id']}/export")
    assert exported.status_code == 200
    assert "attachment" in exported["Content-Disposition"]
    assert exported.json()["results"] == done.results


def test_a_paused_run_waits_and_a_stop_restores_the_lab(
    api: Api, alice: User, running: Deployment, dispatched: Dispatched, run: Any, clock: Clock
) -> None:
    body = run(
        api(alice), "post", f"/api/deployments/{running.pk}/scenarios", {"scenario": "flap"}
    ).json()
    scenarios.scenarios_tick()
    clock.forward(5)
    paused = run(api(alice), "post", f"/api/scenario-runs/{body['id']}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert paused.json()["offset"] == 5.0
    clock.forward(60)
    assert scenarios.scenarios_tick() == 0  # paused: time stands still for it
    again = run(api(alice), "post", f"/api/scenario-runs/{body['id']}/pause")
    assert again.status_code == 409
    run(api(alice), "post", f"/api/scenario-runs/{body['id']}/resume")
    clock.forward(4)
    assert scenarios.scenarios_tick() == 0
    clock.forward(1)
    assert scenarios.scenarios_tick() == 1  # the 10 s step, 10 s of run time in
    second = run(
        api(alice), "post", f"/api/deployments/{running.pk}/scenarios", {"scenario": "flap"}
    )
    assert second.status_code == 409 and "stop it first" in second.json()["detail"]

    stopped = run(api(alice), "post", f"/api/scenario-runs/{body['id']}/stop").json()

    assert stopped["state"] == "stopped" and stopped["reason"] == "stopped by alice"
    assert stopped["results"][-1]["action"] == {"restore": "all"} and stopped["results"][-1]["ok"]
    running.refresh_from_db()
    assert running.live == {"impairments": {}, "down": [], "stopped": []}
    clock.forward(100)
    assert scenarios.scenarios_tick() == 0


def test_steps_sent_with_a_run_are_checked_against_the_lab(
    api: Api, alice: User, running: Deployment, dispatched: Dispatched, run: Any, clock: Clock
) -> None:
    url = f"/api/deployments/{running.pk}/scenarios"
    bad = run(
        api(alice),
        "post",
        url,
        {"steps": [{"at": "1s", "down": "ghost:eth0"}, {"at": "2s", "fly": 1}]},
    )
    assert bad.status_code == 400
    assert "steps.1.fly" in bad.json()["errors"]
    bad = run(api(alice), "post", url, {"steps": [{"at": "1s", "down": "ghost:eth0"}]})
    assert bad.json()["errors"] == {"steps.0.down": ["the lab has no node 'ghost'"]}
    missing = run(api(alice), "post", url, {"scenario": "nope"})
    assert (
        missing.status_code == 400
        and "its scenarios: flap" in missing.json()["errors"]["scenario"][0]
    )
    assert ScenarioRun.objects.count() == 0

    good = run(api(alice), "post", url, {"steps": [{"at": "0s", "check": "connectivity"}]})
    assert good.status_code == 201 and good.json()["name"] == "adhoc"


def test_a_destroy_ends_the_run_and_others_cannot_touch_it(
    api: Api,
    alice: User,
    charlie: User,
    running: Deployment,
    dispatched: Dispatched,
    run: Any,
    clock: Clock,
) -> None:
    body = run(
        api(alice), "post", f"/api/deployments/{running.pk}/scenarios", {"scenario": "flap"}
    ).json()
    assert run(api(charlie), "post", f"/api/scenario-runs/{body['id']}/stop").status_code == 404
    charlie_start = run(
        api(charlie), "post", f"/api/deployments/{running.pk}/scenarios", {"scenario": "flap"}
    )
    assert charlie_start.status_code == 404

    assert run(api(alice), "post", f"/api/labs/{running.lab_id}/destroy").status_code == 202

    ended = ScenarioRun.objects.get(pk=body["id"])
    assert ended.state == "stopped" and ended.reason == "the lab is being destroyed"
    clock.forward(60)
    assert scenarios.scenarios_tick() == 0
    assert "live" not in sent(dispatched)


def test_a_scenario_in_the_labfile_round_trips_through_the_lab(
    api: Api, alice: User, running: Deployment, run: Any
) -> None:
    exported = run(api(alice), "get", f"/api/labs/{running.lab_id}/export?format=json").json()
    assert exported["scenarios"]["flap"][1] == {"at": "10s", "down": "web:eth0"}
    refused = lab_create
    with pytest.raises(Exception) as error:
        refused(
            owner=alice,
            labfile_tree=small_labfile(
                "bad", labfile=2, scenarios={"x": [{"at": "1s", "stop": "ghost"}]}
            ),
        )
    assert "scenarios.x.0.stop" in str(getattr(error.value, "errors", error.value))
