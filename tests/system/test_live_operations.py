"""Live changes of a running lab from its page, against the whole stack (a real browser,
uvicorn, Redis, the control worker and a host agent as root): a link cut and restored, a
rate set on it, a node stopped and started, a bad value refused by field; each change
seen from inside the nodes and kept in the history with who made it. And another user
who can change none of it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import Page, expect

from tests.system.conftest import Stack, wait_for
from tests.system.test_live_deployments import FINAL, deploy, destroy_clean, lab_from, wait_status

Shot = Callable[[Any, str], Path]
BrowserFor = Callable[[str], Page]

PAIR: dict[str, Any] = {
    "labfile": 2,
    "name": "sys-live",
    "nodes": {
        "r1": {"command": ["sleep", "infinity"]},
        "r2": {"command": ["sleep", "infinity"]},
    },
    "links": [
        {"endpoints": ["r1:eth1", "r2:eth1"], "ipv4": ["10.213.171.1/30", "10.213.171.2/30"]}
    ],
}


def run_in(stack: Stack, deployment: int, node: str, *argv: str) -> dict[str, Any]:
    response = stack.post(
        "alice",
        f"/api/deployments/{deployment}/exec",
        json={"node": node, "argv": list(argv), "timeout": 10},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def reaches(stack: Stack, deployment: int) -> bool:
    return run_in(stack, deployment, "r1", "ping", "-c1", "-W1", "10.213.171.2")["exit"] == 0


def tbf_rate(stack: Stack, deployment: int, node: str) -> int | None:
    shown = run_in(stack, deployment, node, "tc", "-j", "qdisc", "show", "dev", "eth1")
    for qdisc in json.loads(shown["stdout"]):
        if qdisc["kind"] == "tbf":
            return int(qdisc["options"]["rate"])
    return None


def row(page: Page, table: str, key: str) -> Any:
    attribute = "data-node" if table == "operate-nodes" else "data-interface"
    return page.locator(f"#{table} tr[{attribute}='{key}']")


def test_a_lab_is_changed_live_from_its_page_and_restored(
    stack: Stack, browser_for: BrowserFor, shot: Shot
) -> None:
    tree = json.loads(json.dumps(PAIR))
    for node in tree["nodes"].values():
        node["host"] = stack.host
    lab = lab_from(stack, tree, "sys-live")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    try:
        assert wait_status(stack, deployment, FINAL) == "running"
        assert reaches(stack, deployment)
        page = browser_for("alice")
        page.goto(f"/labs/{lab}/")
        card = page.locator("#operate")
        expect(row(page, "operate-interfaces", "r1:eth1")).to_contain_text("up")

        # The link cut from the page: both ends down, r1 no longer reaches r2.
        card.get_by_role("button", name="down link r1:eth1").click()
        for end in ("r1:eth1", "r2:eth1"):
            expect(row(page, "operate-interfaces", end).locator(".live-state")).to_have_text("down")
        assert not reaches(stack, deployment)
        card.get_by_role("button", name="up link r1:eth1").click()
        expect(row(page, "operate-interfaces", "r2:eth1").locator(".live-state")).to_have_text("up")
        wait_for("r1 to reach r2 again", lambda: reaches(stack, deployment), timeout=10)

        # A rate on the whole link, then a bad value refused by its field.
        page.locator("#operate-target").select_option("link:r1:eth1")
        form = page.locator("#operate-form")
        form.get_by_label("Rate").fill("1mbit")
        form.get_by_role("button", name="Apply").click()
        expect(row(page, "operate-interfaces", "r2:eth1")).to_contain_text("rate 1mbit (changed)")
        assert tbf_rate(stack, deployment, "r1") == tbf_rate(stack, deployment, "r2") == 125_000
        form.get_by_label("Rate").fill("")
        form.get_by_label("Loss").fill("300%")
        form.get_by_role("button", name="Apply").click()
        expect(page.locator("#operate-error")).to_contain_text("set.loss")
        assert tbf_rate(stack, deployment, "r1") == 125_000  # nothing changed

        # A node stopped: its neighbour sees the carrier go; started again, it answers.
        card.get_by_role("button", name="stop r2").click()
        expect(row(page, "operate-nodes", "r2").locator(".live-state")).to_have_text("stopped")
        assert not reaches(stack, deployment)
        carrier = run_in(stack, deployment, "r1", "cat", "/sys/class/net/eth1/carrier")
        assert carrier["stdout"].strip() == "0"
        shot(page, "stopped")
        card.get_by_role("button", name="start r2").click()
        expect(row(page, "operate-nodes", "r2").locator(".live-state")).to_have_text("running")
        wait_for("r2 to answer again", lambda: reaches(stack, deployment), timeout=10)

        # Restore all: back to the labfile; the history names each change and who made it.
        page.get_by_role("button", name="Restore all").click()
        expect(row(page, "operate-interfaces", "r1:eth1")).to_contain_text("none")
        assert tbf_rate(stack, deployment, "r1") is None
        steps = page.locator("#steps")
        expect(steps).to_contain_text("down link r1:eth1")
        expect(steps).to_contain_text("set rate 1mbit on link r1:eth1")
        expect(steps).to_contain_text("stop node r2")
        shown = stack.get("alice", f"/api/deployments/{deployment}/").json()
        live_steps = [s for s in shown["steps"] if s["name"] == "live"]
        # down, up, set, stop, start, restore: the refused 300% never reached the agent
        # (the topology's down and up come after this count)
        assert [s["actor"] for s in live_steps] == ["alice"] * 6
        assert shown["live"] == {"impairments": {}, "down": [], "stopped": []}

        # The topology draws the link's state and changes it from the link's details.
        topology = browser_for("alice")
        topology.goto(f"/labs/{lab}/topology/")
        topology.locator("button[data-select='plink:0']").click()
        details = topology.locator("#details")
        details.get_by_role("button", name="Link down").click()
        expect(topology.locator("#graph")).to_have_attribute("data-live", re.compile("plink:0"))
        expect(details).to_contain_text("r1:eth1 now")
        assert not reaches(stack, deployment)
        details.get_by_label("Loss").fill("300%")
        details.get_by_role("button", name="Set on the link").click()
        expect(details.locator("#live-error")).to_contain_text("set.loss")
        details.get_by_role("button", name="Link up").click()
        expect(topology.locator("#graph")).not_to_have_attribute("data-live", re.compile("plink:0"))
        wait_for("r1 to reach r2 once more", lambda: reaches(stack, deployment), timeout=10)

        # Another user can neither change the lab nor see it.
        refused = stack.post("charlie", f"/api/deployments/{deployment}/live", json={"stop": "r1"})
        assert refused.status_code == 404
        assert reaches(stack, deployment)
    finally:
        destroy_clean(stack, lab, token, deployment)


def test_a_scenario_runs_on_the_server_with_its_page_closed_and_is_kept(
    stack: Stack, browser_for: BrowserFor, shot: Shot
) -> None:
    tree = json.loads(json.dumps(PAIR))
    for node in tree["nodes"].values():
        node["host"] = stack.host
    tree["scenarios"] = {
        "flap": [
            {"at": "0s", "set": {"link": "r1:eth1", "rate": "1mbit"}},
            {"at": "2s", "down": {"link": "r1:eth1"}},
            {"at": "3s", "exec": {"node": "r1", "command": ["ping", "-c1", "-W1", "10.213.171.2"]}},
            {"at": "4s", "restore": "all"},
            {"at": "5s", "check": "connectivity"},
        ]
    }
    lab = lab_from(stack, tree, "sys-scenario")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    try:
        assert wait_status(stack, deployment, FINAL) == "running"
        page = browser_for("alice")
        page.goto(f"/labs/{lab}/")
        card = page.locator("#scenario")
        expect(page.locator("#scenario-name")).to_have_value("flap")
        card.get_by_role("button", name="Run").click()
        expect(card).to_have_attribute("data-state", "running")
        expect(page.locator("#scenario-results li")).to_have_count(1, timeout=10_000)
        page.close()  # the server goes on without the page

        def finished() -> bool:
            runs = stack.get("alice", f"/api/deployments/{deployment}/scenarios").json()
            return bool(runs) and runs[0]["state"] == "finished"

        wait_for("the scenario to finish", finished, timeout=60)
        [run] = stack.get("alice", f"/api/deployments/{deployment}/scenarios").json()
        assert [r["ok"] for r in run["results"]] == [True, True, False, True, True], run
        assert "exited 0" not in run["results"][2]["message"]  # the link was down
        assert run["results"][4]["message"].startswith("connectivity: 2 of 2 probes answered")
        assert reaches(stack, deployment) and tbf_rate(stack, deployment, "r1") is None

        again = browser_for("alice")
        again.goto(f"/labs/{lab}/")
        expect(again.locator("#scenario")).to_have_attribute("data-state", "finished")
        expect(again.locator("#scenario-results li")).to_have_count(5)
        expect(again.locator("#scenario-results li[data-status=failed]")).to_have_count(1)
        expect(again.locator("#scenario-timeline .timeline-step")).to_have_count(5)
        expect(again.get_by_role("link", name="Export the results")).to_be_visible()
        marks = int(again.locator("#charts").get_attribute("data-marks") or 0)
        assert marks >= 5  # three live changes, the command and the check
        again.evaluate("document.getElementById('scenario').scrollIntoView()")
        shot(again, "finished")
        exported = stack.get("alice", f"/api/scenario-runs/{run['id']}/export")
        assert exported.status_code == 200 and exported.json()["results"] == run["results"]
        assert stack.get("charlie", f"/api/scenario-runs/{run['id']}/export").status_code == 404
    finally:
        destroy_clean(stack, lab, token, deployment)
