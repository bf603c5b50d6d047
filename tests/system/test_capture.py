"""Packet capture through the real stack: REST start, pings through exec, live counts,
stop, download and parse the pcap; a capture left running ends with the lab."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kernel.test_capture import icmp_types
from tests.system.conftest import ROOT, Stack, wait_for
from tests.system.test_live_deployments import FINAL, deploy, destroy_clean, lab_from, wait_status


def tcpdumps_of(token: str) -> list[str]:
    """Command lines of tcpdump processes writing into the deployment's files."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tcpdump") and f"/{token}/".encode() in b" ".join(argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def captures_path(deployment: int, rest: str = "") -> str:
    return f"/api/deployments/{deployment}/captures{rest}"


def capture(stack: Stack, deployment: int, cid: int) -> dict[str, Any]:
    body: dict[str, Any] = stack.get("alice", captures_path(deployment, f"/{cid}/")).json()
    return body


def test_pings_are_captured_stopped_downloaded_and_a_running_capture_ends_with_the_lab(
    stack: Stack,
) -> None:
    tree = yaml.safe_load((ROOT / "examples" / "two-nodes.yaml").read_text())
    lab = lab_from(stack, tree, "sys-capture")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    try:
        assert wait_status(stack, deployment, FINAL) == "running"
        bad = stack.post(
            "alice",
            captures_path(deployment),
            json={"node": "alice", "interface": "eth0", "filter": "icmp and and"},
        )
        assert bad.status_code == 400, bad.text
        assert list(bad.json()["errors"]) == ["filter"]
        assert bad.json()["errors"]["filter"][0].startswith("filter: ")

        started = stack.post(
            "alice",
            captures_path(deployment),
            json={"node": "alice", "interface": "eth0", "filter": "icmp"},
        )
        assert started.status_code == 201, started.text
        first = started.json()
        assert first["state"] == "running"
        # A second one on bob, with no filter, left running until the lab is destroyed.
        second = stack.post(
            "alice", captures_path(deployment), json={"node": "bob", "interface": "eth0"}
        ).json()

        ping = stack.post(
            "alice",
            f"/api/deployments/{deployment}/exec",
            json={"node": "alice", "argv": ["ping", "-c3", "-i0.2", "bob"], "timeout": 20},
        )
        assert ping.json()["exit"] == 0, ping.text
        live = wait_for(
            "the live count to show the pings",
            lambda: (c := capture(stack, deployment, first["id"]))["packets"] >= 6 and c,
            timeout=20,
        )
        assert live["state"] == "running" and live["bytes"] > 24

        stopped = stack.post("alice", captures_path(deployment, f"/{first['id']}/stop"))
        assert stopped.status_code == 202, stopped.text
        ended = wait_for(
            "the capture to stop",
            lambda: (c := capture(stack, deployment, first["id"]))["state"] == "stopped" and c,
            timeout=20,
        )
        assert ended["reason"] == "stopped on request"
        pcap = stack.get("alice", captures_path(deployment, f"/{first['id']}/pcap"))
        assert pcap.status_code == 200
        assert pcap.headers["Content-Type"] == "application/vnd.tcpdump.pcap"
        types = icmp_types(pcap.content)
        assert types.count(8) == types.count(0) == 3  # three echoes, three replies
        assert ended["packets"] == len(types) and ended["bytes"] == len(pcap.content)
        assert (
            stack.get("charlie", captures_path(deployment, f"/{first['id']}/pcap")).status_code
            == 404
        )
        assert len(tcpdumps_of(token)) == 1  # bob's
    finally:
        destroy_clean(stack, lab, token, deployment)

    after = wait_for(
        "the capture left running to end with the lab",
        lambda: (c := capture(stack, deployment, second["id"]))["state"] != "running" and c,
        timeout=20,
    )
    assert after["state"] == "stopped"
    assert after["reason"] == "the node stopped (lab destroyed or node replaced)"
    leftover = stack.get("alice", captures_path(deployment, f"/{second['id']}/pcap"))
    assert 8 in icmp_types(leftover.content)
    assert tcpdumps_of(token) == []


def test_a_student_captures_pings_from_the_lab_page_and_downloads_the_pcap(
    stack: Stack, browser_for: Any, shot: Any
) -> None:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from playwright.sync_api import expect

    tree = yaml.safe_load((ROOT / "examples" / "two-nodes.yaml").read_text())
    lab = lab_from(stack, tree, "sys-capture-page")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    try:
        assert wait_status(stack, deployment, FINAL) == "running"
        page = browser_for("alice")
        page.goto(f"/labs/{lab}/")
        panel = page.locator("#captures")
        expect(page.locator("#capture-interface option")).to_have_count(1)
        panel.get_by_label("Node").select_option("alice")
        panel.get_by_label("Filter").fill("icmp and and")
        panel.get_by_role("button", name="Start capture").click()
        expect(panel.locator(".field-error[data-field=filter]")).to_contain_text("filter: ")
        panel.get_by_label("Filter").fill("icmp")
        panel.get_by_role("button", name="Start capture").click()
        row = panel.locator("#capture-table tbody tr[data-capture]")
        expect(row).to_have_attribute("data-state", "running")
        stack.post(
            "alice",
            f"/api/deployments/{deployment}/exec",
            json={"node": "alice", "argv": ["ping", "-c3", "-i0.2", "bob"], "timeout": 20},
        )
        expect(row.locator(".capture-packets")).to_have_text("6", timeout=10_000)
        shot(page, "capture-running")
        row.get_by_role("button", name="Stop").click()
        link = row.get_by_role("link", name="Download .pcap")
        expect(link).to_be_visible(timeout=15_000)
        with page.expect_download() as download:
            link.click()
        data = Path(download.value.path()).read_bytes()
        assert download.value.suggested_filename.startswith("sys-capture-page-alice-eth0-")
        assert sorted(icmp_types(data)) == [0, 0, 0, 8, 8, 8]
        shot(page, "capture-stopped")
    finally:
        destroy_clean(stack, lab, token, deployment)
