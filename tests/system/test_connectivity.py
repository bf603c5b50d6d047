"""The connectivity check against the real stack: a lab of two bridges is deployed, every
node pings every other, and the matrix says what the kernel really did."""

from __future__ import annotations

import yaml

from tests.system.conftest import ROOT, Stack
from tests.system.test_live_deployments import FINAL, deploy, destroy_clean, lab_from, wait_status


def test_the_connectivity_check_of_two_bridges_matches_the_kernel(stack: Stack) -> None:
    tree = yaml.safe_load((ROOT / "examples" / "two-bridges.yaml").read_text())
    lab = lab_from(stack, tree, "sys-connectivity")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    try:
        assert wait_status(stack, deployment, FINAL) == "running"
        response = stack.post("alice", f"/api/deployments/{deployment}/connectivity")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["nodes"] == ["blue1", "red1", "red2"]
        seen = {
            (p["src"], p["dst"], p["network"]): (p["reachable"], p["expected"])
            for p in report["probes"]
        }
        assert seen == {
            # One bridge: its members answer, as the lab expects.
            ("red1", "red2", "red"): (True, True),
            ("red2", "red1", "red"): (True, True),
            # Across bridges: the host refuses to forward, as the lab expects.
            ("red1", "blue1", "blue"): (False, False),
            ("red2", "blue1", "blue"): (False, False),
            ("blue1", "red1", "red"): (False, False),
            ("blue1", "red2", "red"): (False, False),
        }
    finally:
        destroy_clean(stack, lab, token, deployment)
