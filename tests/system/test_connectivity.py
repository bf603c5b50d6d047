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


DUAL_STACK_CHAIN = {
    "labfile": 2,
    "name": "sys-dual-chain",
    "networks": {"lan": {"subnet": "10.243.1.0/24", "subnet6": "fd00:243:1::/64"}},
    "nodes": {
        "a": {"networks": {"lan": {}}},
        "b": {"networks": {"lan": {}}},
        "c": {},
    },
    "links": [
        {
            "endpoints": ["b:eth1", "c:eth1"],
            "ipv4": ["10.243.9.1/30", "10.243.9.2/30"],
            "ipv6": ["fd00:243:9::1/64", "fd00:243:9::2/64"],
            "impairments": {"b:eth1": {"rate": "10mbit"}},
        }
    ],
}


def test_a_labfile_2_lab_runs_and_its_links_and_ipv6_answer_as_planned(stack: Stack) -> None:
    lab = lab_from(stack, DUAL_STACK_CHAIN, "sys-dual-chain")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    try:
        assert wait_status(stack, deployment, FINAL) == "running"
        exported = stack.get("alice", f"/api/labs/{lab}/export?format=json")
        assert exported.status_code == 200 and exported.json()["labfile"] == 2
        response = stack.post("alice", f"/api/deployments/{deployment}/connectivity")
        assert response.status_code == 200, response.text
        seen = {
            (p["src"], p["address"]): (p["reachable"], p["expected"])
            for p in response.json()["probes"]
        }
        # On the network, both families; on the link, its two ends only.
        assert seen[("a", "10.243.1.3")] == (True, True)
        assert seen[("a", "fd00:243:1::3")] == (True, True)
        assert seen[("c", "10.243.9.1")] == (True, True)
        assert seen[("c", "fd00:243:9::1")] == (True, True)
        assert seen[("a", "10.243.9.2")] == (False, False)
        assert seen[("c", "fd00:243:1::2")] == (False, False)
    finally:
        destroy_clean(stack, lab, token, deployment)
