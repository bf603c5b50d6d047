"""Live changes of a running lab (the agent's `live` job), seen from inside the nodes: a
link set down and up again, a rate changed and restored, a node stopped, killed and
started again keeping its interfaces, addresses and routes, and a change the kernel
refuses leaving what was there."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from labplan import labfile, live
from labplan.live import State
from workers.agent import Agent
from workers.jobs import Job
from workers.kernel.processes import alive
from workers.status import drift

from .conftest import Lab

CHAIN: dict[str, Any] = {
    "labfile": 2,
    "name": "live",
    "nodes": {
        "r1": {
            "command": ["sleep", "infinity"],
            "routes": [{"dst": "10.213.152.0/31", "via": "10.213.151.2"}],
        },
        "r2": {"command": ["sleep", "infinity"], "sysctls": {"net.ipv4.ip_forward": "1"}},
        "r3": {
            "command": ["sleep", "infinity"],
            "routes": [{"dst": "10.213.151.0/30", "via": "10.213.152.0"}],
        },
    },
    "links": [
        {
            "endpoints": ["r1:eth1", "r2:eth1"],
            "ipv4": ["10.213.151.1/30", "10.213.151.2/30"],
            "ipv6": ["fd00:213:151::1/64", "fd00:213:151::2/64"],
        },
        {
            "endpoints": ["r2:eth2", "r3:eth1"],
            "ipv4": ["10.213.152.0/31", "10.213.152.1/31"],
            "impairments": {"r2:eth2": {"rate": "5mbit"}},
        },
    ],
}


class Live:
    """Actions on a built lab the way the control plane sends them: its live state
    kept between them, each action's changes run by the agent's job."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.model = labfile.validate(CHAIN)
        self.state = State()
        self.agent = Agent(lab.executor, send=lambda task, report: None, host="local")
        self.deployment = int(lab.token[2:], 36)

    def __call__(self, action: dict[str, Any]) -> dict[str, Any]:
        changes, after = live.plan(self.model, self.state, live.parse(action))
        answer = self.agent.run(
            None,
            Job.LIVE,
            {"deployment": self.deployment, "token": self.lab.token, "changes": changes},
        )
        if answer["ok"]:
            self.state = after
        return answer  # type: ignore[no-any-return]


def link(lab: Lab, node: str, ifname: str) -> dict[str, Any]:
    shown = lab.run(node, "ip", "-j", "addr", "show", "dev", ifname)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)[0]  # type: ignore[no-any-return]


def qdisc(lab: Lab, node: str, ifname: str) -> list[str]:
    shown = lab.run(node, "tc", "-j", "qdisc", "show", "dev", ifname)
    assert shown.returncode == 0, shown.stderr
    return [q["kind"] for q in json.loads(shown.stdout)]


def rate(lab: Lab, node: str, ifname: str) -> int | None:
    shown = lab.run(node, "tc", "-j", "qdisc", "show", "dev", ifname)
    for q in json.loads(shown.stdout):
        if q["kind"] == "tbf":
            return int(q["options"]["rate"])  # bytes per second, as tc -j writes it
    return None


def test_a_link_set_down_is_lost_on_both_ends_and_comes_back_with_its_routes(build: Any) -> None:
    lab: Lab = build(CHAIN)
    change = Live(lab)
    assert lab.ping("r1", "10.213.152.1")  # r3, through r2 by r1's route

    answer = change({"down": {"link": "r1:eth1"}})

    assert answer["ok"], answer
    assert "UP" not in link(lab, "r1", "eth1")["flags"]
    assert "UP" not in link(lab, "r2", "eth1")["flags"]
    assert not lab.ping("r1", "10.213.151.2")
    # The kernel dropped r1's route and IPv6 address with the interface...
    routes = lab.run("r1", "ip", "-j", "route").stdout
    assert "10.213.152.0/31" not in routes

    answer = change({"up": {"link": "r1:eth1"}})

    assert answer["ok"], answer
    assert lab.ping("r1", "10.213.152.1")  # ... and the change put them back
    addresses = {a["local"] for a in link(lab, "r1", "eth1")["addr_info"]}
    assert addresses == {"10.213.151.1", "fd00:213:151::1"}
    assert lab.run("r1", "ping", "-6", "-c1", "-W2", "fd00:213:151::2").returncode == 0


def test_one_interface_down_leaves_the_other_end_up_without_carrier(build: Any) -> None:
    lab: Lab = build(CHAIN)
    change = Live(lab)

    assert change({"down": "r2:eth1"})["ok"]

    far = link(lab, "r1", "eth1")
    assert "UP" in far["flags"] and "NO-CARRIER" in far["flags"]
    assert not lab.ping("r1", "10.213.151.2")
    assert lab.ping("r2", "10.213.152.1")  # r2's other link is untouched

    assert change({"restore": "all"})["ok"]
    assert lab.ping("r1", "10.213.151.2")


def test_a_rate_is_changed_live_and_restored_to_the_labfiles(build: Any) -> None:
    lab: Lab = build(CHAIN)
    change = Live(lab)
    assert rate(lab, "r2", "eth2") == 5_000_000 // 8
    assert rate(lab, "r1", "eth1") is None

    assert change({"set": {"link": "r1:eth1", "rate": "1mbit"}})["ok"]
    assert change({"set": {"interface": "r2:eth2", "rate": "20mbit"}})["ok"]

    assert rate(lab, "r1", "eth1") == rate(lab, "r2", "eth1") == 1_000_000 // 8
    assert rate(lab, "r2", "eth2") == 20_000_000 // 8
    assert rate(lab, "r3", "eth1") is None  # the other direction was not asked
    assert lab.ping("r1", "10.213.151.2")

    assert change({"restore": "all"})["ok"]

    assert rate(lab, "r1", "eth1") is None and "tbf" not in qdisc(lab, "r2", "eth1")
    assert rate(lab, "r2", "eth2") == 5_000_000 // 8  # the labfile's own
    assert change.state.empty


def test_a_refused_change_leaves_the_previous_impairments(build: Any, facts: Any) -> None:
    if "netem" in facts.qdiscs:
        pytest.skip("this kernel has netem: it does not refuse a delay")
    lab: Lab = build(CHAIN)
    change = Live(lab)
    assert change({"set": {"link": "r1:eth1", "rate": "2mbit"}})["ok"]

    answer = change({"set": {"link": "r1:eth1", "rate": "1mbit", "delay": "10ms"}})

    assert not answer["ok"] and answer["error"].startswith("r1:eth1: ")
    assert rate(lab, "r1", "eth1") == rate(lab, "r2", "eth1") == 2_000_000 // 8
    assert change.state.impairments["r1:eth1"] == {"rate": "2mbit"}


@pytest.mark.parametrize("verb", ["stop", "kill"])
def test_a_stopped_node_keeps_its_interfaces_and_starts_again(build: Any, verb: str) -> None:
    lab: Lab = build(CHAIN)
    change = Live(lab)
    before = lab.init("r2")
    macs = {i: link(lab, "r2", i)["address"] for i in ("eth1", "eth2")}

    answer = change({verb: "r2"})

    assert answer["ok"] and answer["stopped"] == ["r2"], answer
    assert not alive(before)
    far = link(lab, "r1", "eth1")
    assert "NO-CARRIER" in far["flags"]  # r1 sees its neighbour gone
    assert not lab.ping("r1", "10.213.151.2")
    plan = lab.executor.journal.read(lab.token)
    assert plan is not None and plan.host_plan() is not None
    assert drift(lab.executor, plan.host_plan()) == ([], [])  # stopped on purpose

    answer = change({"start": "r2"})

    assert answer["ok"] and answer["stopped"] == [], answer
    after = lab.init("r2")
    assert after != before and alive(after)
    assert {i: link(lab, "r2", i)["address"] for i in ("eth1", "eth2")} == macs
    assert lab.ping("r1", "10.213.152.1")  # r1 through r2 to r3: routes, forwarding
    assert lab.run("r2", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    assert rate(lab, "r2", "eth2") == 5_000_000 // 8


def test_a_node_started_again_keeps_an_interface_that_was_set_down(build: Any) -> None:
    lab: Lab = build(CHAIN)
    change = Live(lab)
    assert change({"down": "r2:eth2"})["ok"]
    assert change({"restart": "r2"})["ok"]

    assert "UP" not in link(lab, "r2", "eth2")["flags"]
    assert lab.ping("r2", "10.213.151.1")
    assert not lab.ping("r2", "10.213.152.1")


def test_a_change_names_only_the_deployments_own_interfaces(build: Any) -> None:
    lab: Lab = build(CHAIN)
    agent = Agent(lab.executor, send=lambda task, report: None, host="local")
    deployment = int(lab.token[2:], 36)
    for change in (
        {"node": "r1", "ifname": "lo", "up": False},
        {"node": "r1", "ifname": "eth0", "up": False},
        {"node": "ghost", "action": "kill"},
    ):
        answer = agent.run(
            None, Job.LIVE, {"deployment": deployment, "token": lab.token, "changes": [change]}
        )
        assert not answer["ok"], change
    wrong = agent.run(
        None, Job.LIVE, {"deployment": deployment + 1, "token": lab.token, "changes": []}
    )
    assert not wrong["ok"] and "no deployment" in wrong["error"]
    assert "UP" in link(lab, "r1", "lo")["flags"]
    assert lab.ping("r1", "10.213.151.2")


def rtt_and_loss(lab: Lab, count: int, interval: str) -> tuple[float, int]:
    """r1's pings to r2 over their link: the average round trip (ms) and echoes lost."""
    done = lab.run(
        "r1", "ping", "-n", "-q", f"-c{count}", f"-i{interval}", "-W2", "10.213.151.2", timeout=90
    )
    sent, received = (
        int(n) for n in re.findall(r"(\d+) (?:packets transmitted|received)", done.stdout)
    )
    average = float(done.stdout.split(" = ")[1].split("/")[1]) if received else float("inf")
    return average, sent - received


@pytest.mark.vm
def test_a_delay_and_a_loss_set_live_show_in_the_pings_and_go_with_restore(
    build: Any, facts: Any
) -> None:
    if "netem" not in facts.qdiscs:
        pytest.skip("kernel lacks netem")
    lab: Lab = build(CHAIN)
    change = Live(lab)
    before, lost = rtt_and_loss(lab, 5, "0.2")
    assert lost == 0 and before < 40

    assert change({"set": {"link": "r1:eth1", "delay": "50ms"}})["ok"]
    delayed, lost = rtt_and_loss(lab, 5, "0.2")
    assert lost == 0 and delayed >= 95  # 50 ms each way: both ends send through netem

    assert change({"set": {"interface": "r1:eth1", "loss": "30%"}})["ok"]
    _, lost = rtt_and_loss(lab, 100, "0.02")
    assert 10 <= lost <= 55, lost  # 30 % of what r1 sends; r2's replies only delayed
    assert "netem" in qdisc(lab, "r2", "eth1")

    assert change({"restore": "all"})["ok"]
    after, lost = rtt_and_loss(lab, 5, "0.2")
    assert lost == 0 and after < 40
    assert "netem" not in qdisc(lab, "r1", "eth1") + qdisc(lab, "r2", "eth1")
