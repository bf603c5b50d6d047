"""A student's session in a real browser against the whole stack (uvicorn, Redis, the
control worker, beat and a host agent as root): log in, copy an example, deploy it, watch
it come up, use it from a terminal, check its connectivity, destroy it, and find the
kernel clean. And a second user who cannot open any of it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import Page, expect

from tests.system.conftest import Stack, wait_for
from tests.system.test_live_deployments import TWO_NODES, kernel_objects, lab_from

Shot = Callable[[Any, str], Path]
BrowserFor = Callable[[str], Page]
DEPLOY_TIMEOUT = 90_000  # ms


def lab_id(page: Page) -> int:
    match = re.search(r"/labs/(\d+)/", page.url)
    assert match, page.url
    return int(match.group(1))


def deploy_from_the_page(stack: Stack, page: Page) -> tuple[int, str]:
    """Clicks Deploy and confirms; returns the deployment's id and kernel token, the
    token kept for the stack's cleanup should the test fail before its destroy."""
    page.get_by_role("button", name="Deploy", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Deploy this lab?")
    dialog.get_by_role("button", name="Deploy").click()
    info = page.locator("#deployment-info")
    expect(info).to_have_text(re.compile(r"^Deployment #\d+"))
    match = re.match(r"Deployment #(\d+)", info.inner_text())
    assert match
    deployment = int(match.group(1))
    token = str(stack.get("alice", f"/api/deployments/{deployment}/").json()["token"])
    stack.tokens.append(token)
    return deployment, token


def confirm(page: Page, button: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name=button).click()


def scroll_to(page: Page, element_id: str) -> None:
    """Brings an element to the top of the window, for the screenshot that follows."""
    page.evaluate(f"document.getElementById({element_id!r}).scrollIntoView({{block: 'start'}})")


def chart_points(page: Page) -> int:
    return int(page.locator("#charts").get_attribute("data-points") or 0)


def matrix(page: Page) -> dict[tuple[str, str], str]:
    """The connectivity matrix as the page draws it: (from, to) -> the cell's words."""
    cells: dict[tuple[str, str], str] = page.evaluate(
        """() => {
          const table = document.getElementById("connectivity-matrix");
          const heads = [...table.tHead.rows[0].cells].slice(1).map((c) => c.textContent);
          const out = {};
          for (const row of table.tBodies[0].rows) {
            const src = row.cells[0].textContent;
            [...row.cells].slice(1).forEach((c, i) => {
              out[src + ">" + heads[i]] = c.textContent;
            });
          }
          return out;
        }"""
    )
    return {tuple(k.split(">")): v for k, v in cells.items()}  # type: ignore[misc]


def test_a_student_deploys_an_example_uses_it_and_destroys_it_leaving_the_kernel_clean(
    stack: Stack, browser_for: BrowserFor, shot: Shot
) -> None:
    page = browser_for("alice")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("link", name="Examples").first.click()
    page.get_by_role("button", name="Copy two-bridges into my labs").click()
    page.wait_for_url(re.compile(r"/labs/\d+/$"))
    lab = lab_id(page)
    expect(page.locator("#lab-status")).to_have_text("Not deployed")
    expect(page.locator("#stream-state")).to_have_text("live")

    deployment, token = deploy_from_the_page(stack, page)
    expect(page.locator("#lab-status")).to_have_text("Running", timeout=DEPLOY_TIMEOUT)
    # The steps arrived on the websocket as the agent did them, and all succeeded.
    steps = page.locator("#steps li")
    expect(steps.first).to_be_visible()
    assert steps.count() == page.locator('#steps li[data-status="succeeded"]').count() > 3
    expect(page.locator("#progress-bar")).to_have_attribute("style", "width: 100%;")
    # The bar slides to full width (a CSS transition): wait for it before the screenshot.
    page.wait_for_function(
        "(bar => bar.offsetWidth === bar.parentElement.clientWidth)"
        "(document.getElementById('progress-bar'))"
    )
    for node in ("blue1", "red1", "red2"):
        expect(page.locator(f'#node-list li[data-node="{node}"] .live-state')).to_have_text(
            "running"
        )
    shot(page, "lab-running")

    # A chart gains points as the agent's samples arrive, one a second.
    page.wait_for_function("Number(document.getElementById('charts').dataset.points) >= 2")
    before = chart_points(page)
    page.wait_for_function(
        f"Number(document.getElementById('charts').dataset.points) > {before}", timeout=15_000
    )
    expect(page.locator('#charts [data-chart="cpu"] canvas')).to_be_visible()
    scroll_to(page, "metrics-title")
    shot(page, "charts")

    page.get_by_role("link", name="Dashboard", exact=True).first.click()
    row = page.locator(f'tr[data-lab="{lab}"]')
    expect(row).to_contain_text("two-bridges")
    expect(row.locator(".lab-status")).to_contain_text("Running")
    expect(page.locator(f'li[data-host="{stack.host}"]')).to_contain_text("Online")
    shot(page, "dashboard")

    # The topology colours nodes from what the agent reports.
    page.goto(f"/labs/{lab}/topology/")
    page.wait_for_function("window.labTopology && window.labTopology.nodes().length > 0")
    page.locator("#topology-list").get_by_role("button", name=re.compile("red1")).click()
    expect(page.locator("#details")).to_contain_text("running")
    shot(page, "topology")

    # A terminal in red1: `hostname` prints the node's name.
    page.goto(f"/labs/{lab}/terminals/")
    page.locator("#terminal-node").select_option("red1")
    page.get_by_role("button", name="Open terminal").click()
    terminal = page.locator(".term").last
    expect(terminal.locator(".term-state")).to_have_text("connected")
    terminal.locator(".xterm").click()
    page.keyboard.type("hostname\n")
    expect(terminal.locator(".xterm-rows > div", has_text=re.compile(r"^red1\s*$"))).to_have_count(
        1
    )
    shot(page, "terminal")

    # The connectivity check: one bridge answers, the other does not, as expected.
    page.goto(f"/labs/{lab}/")
    page.get_by_role("button", name="Check connectivity").click()
    expect(page.locator("#connectivity-summary")).to_have_text(
        "All 6 probes are as expected.", timeout=30_000
    )
    seen = matrix(page)
    reach = {pair: text.split(" ")[1] for pair, text in seen.items() if text != "\u2014"}
    assert reach == {
        ("red1", "red2"): "reachable",
        ("red2", "red1"): "reachable",
        ("red1", "blue1"): "unreachable",
        ("red2", "blue1"): "unreachable",
        ("blue1", "red1"): "unreachable",
        ("blue1", "red2"): "unreachable",
    }
    assert "10.1.0." in seen[("red1", "red2")] and "(red)" in seen[("red1", "red2")]
    scroll_to(page, "connectivity-title")
    shot(page, "connectivity")

    confirm(page, "Destroy")
    expect(page.locator("#lab-status")).to_have_text("Destroyed", timeout=DEPLOY_TIMEOUT)
    expect(page.locator('#node-list li[data-node="red1"] .live-state')).to_have_text("stopped")
    shot(page, "destroyed")
    assert stack.get("alice", f"/api/deployments/{deployment}/").json()["status"] == "destroyed"
    wait_for(f"the kernel to hold nothing of {token}", lambda: not kernel_objects(token))


def _socket_outcome(page: Page, url: str) -> str:
    """Opens a websocket from the page: "open", or "closed <code>" when refused."""
    return str(
        page.evaluate(
            """(url) => new Promise((resolve) => {
              const socket = new WebSocket(url);
              socket.onopen = () => { socket.close(); resolve("open"); };
              socket.onclose = (event) => resolve("closed " + event.code);
            })""",
            url,
        )
    )


def test_another_user_cannot_open_my_lab_page_terminal_or_stream(
    stack: Stack, browser_for: BrowserFor, shot: Shot
) -> None:
    lab = lab_from(stack, TWO_NODES, "browser-private")
    stream = f"{stack.ws_base}/ws/labs/{lab}/"
    terminal = f"{stack.ws_base}/ws/labs/{lab}/nodes/alice/terminal"

    owner = browser_for("alice")
    assert _socket_outcome(owner, stream) == "open"  # the same socket works for its owner

    page = browser_for("charlie")
    for path in (f"/labs/{lab}/", f"/labs/{lab}/terminals/", f"/labs/{lab}/topology/"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_text("There is nothing at this address")).to_be_visible()
        expect(page.locator("body")).not_to_contain_text("browser-private")
    shot(page, "not-found")
    # A refused handshake: the browser sees the socket close without ever opening.
    assert _socket_outcome(page, stream) == "closed 1006"
    assert _socket_outcome(page, terminal) == "closed 1006"
