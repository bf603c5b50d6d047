"""The grammar of live changes (labplan.live): what each action touches in a lab, the
changes the agent is sent, the state after, and what a restore goes back to."""

from __future__ import annotations

from typing import Any

import pytest

from labplan import labfile, live
from labplan.live import LiveError, State

LAB: dict[str, Any] = {
    "labfile": 2,
    "name": "grammar",
    "networks": {
        "lan": {"driver": "bridge", "subnet": "10.213.160.0/24", "impairments": {"delay": "5ms"}},
        "up": {"driver": "host"},
    },
    "nodes": {
        "r1": {"networks": {"lan": {}}},
        "r2": {"networks": {"lan": {"impairments": {"rate": "10mbit"}}}},
        "side": {"network_mode": "container:r1"},
        "edge": {"networks": {"up": {}}},
    },
    "links": [
        {
            "endpoints": ["r1:eth1", "r2:eth1"],
            "ipv4": ["10.213.161.1/30", "10.213.161.2/30"],
            "impairments": {"r1:eth1": {"loss": "1%"}},
        }
    ],
}


@pytest.fixture
def lab() -> Any:
    return labfile.validate(LAB)


def test_the_baseline_is_each_interfaces_labfile_impairments(lab: Any) -> None:
    known = {k: live.impairments_document(v) for k, v in live.baseline(lab).items()}
    assert known == {
        "r1:eth0": {"delay": "5ms"},  # the network's
        "r2:eth0": {"rate": "10mbit"},  # its attachment's own, instead
        "r1:eth1": {"loss": "1%"},
        "r2:eth1": {},
    }  # neither the joined node nor the host-network one has interfaces of its own


def test_a_link_is_changed_on_both_ends_a_network_on_every_attachment(lab: Any) -> None:
    changes, after = live.plan(
        lab, State(), live.parse({"set": {"link": "r2:eth1", "loss": "30%"}})
    )
    assert [(c["node"], c["ifname"], c["impairments"]["loss"]) for c in changes] == [
        ("r1", "eth1", 30.0),
        ("r2", "eth1", 30.0),
    ]
    assert changes[0]["previous"]["loss"] == 1.0 and changes[1]["previous"] is None

    changes, after = live.plan(lab, after, live.parse({"set": {"network": "lan"}}))
    assert [(c["node"], c["ifname"], c["impairments"]) for c in changes] == [
        ("r1", "eth0", None),
        ("r2", "eth0", None),
    ]
    assert after.impairments == {
        "r1:eth0": {},
        "r2:eth0": {},
        "r1:eth1": {"loss": "30%"},
        "r2:eth1": {"loss": "30%"},
    }


def test_setting_what_is_already_there_sends_nothing(lab: Any) -> None:
    changes, after = live.plan(
        lab, State(), live.parse({"set": {"interface": "r1:eth1", "loss": "1%"}})
    )
    assert changes == [] and after.empty


def test_restore_goes_back_to_the_labfile_and_starts_stopped_nodes(lab: Any) -> None:
    state = State()
    for action in (
        {"set": {"link": "r1:eth1", "delay": "9ms"}},
        {"down": "r2:eth0"},
        {"kill": "r2"},
    ):
        _, state = live.plan(lab, state, live.parse(action))
    assert state.to_dict() == {
        "impairments": {"r1:eth1": {"delay": "9ms"}, "r2:eth1": {"delay": "9ms"}},
        "down": ["r2:eth0"],
        "stopped": ["r2"],
    }

    changes, after = live.plan(lab, state, live.parse({"restore": "all"}))

    assert changes[0] == {"node": "r2", "action": "start", "down": []}
    assert {(c["node"], c["ifname"]) for c in changes[1:]} == {("r1", "eth1"), ("r2", "eth1")}
    restored = next(c for c in changes if c.get("ifname") == "eth1" and c["node"] == "r1")
    assert restored["impairments"]["loss"] == 1.0  # the labfile's own, not none
    assert after.empty


def test_a_start_keeps_the_interfaces_set_down_while_it_was_stopped(lab: Any) -> None:
    state = State()
    for action in ({"stop": "r1"}, {"down": "r1:eth1"}):
        changes, state = live.plan(lab, state, live.parse(action))
    assert changes == []  # parked already: nothing for the agent, but remembered
    changes, state = live.plan(lab, state, live.parse({"start": "r1"}))
    assert changes == [{"node": "r1", "action": "start", "down": ["eth1"]}]
    changes, _ = live.plan(lab, state, live.parse({"restart": "r1"}))
    assert changes == [
        {"node": "r1", "action": "stop"},
        {"node": "r1", "action": "start", "down": ["eth1"]},
    ]


@pytest.mark.parametrize(
    ("action", "field", "said"),
    [
        ({"down": "side:eth0"}, "down", "shares r1's network"),
        ({"down": "edge:eth0"}, "down", "uses the host's network"),
        (
            {"set": {"network": "up", "loss": "1%"}},
            "set.network",
            "no interface a change can reach",
        ),
        ({"set": {"network": "wan", "loss": "1%"}}, "set.network", "no network 'wan'"),
        ({"set": {"link": "r1:eth1", "colour": "red"}}, "set.colour", ""),
        ({"stop": "r1:eth1"}, "stop", "not a node name"),
        ({"restore": {"node": "ghost"}}, "restore", "no node 'ghost'"),
        ({"down": "R1 eth1"}, "down", "node:ifname"),
    ],
)
def test_refusals_name_the_field(lab: Any, action: Any, field: str, said: str) -> None:
    with pytest.raises(LiveError) as refused:
        live.plan(lab, State(), live.parse(action))
    [error] = refused.value.errors
    assert error.path == field and said in error.message


def test_the_state_survives_its_json_form(lab: Any) -> None:
    _, state = live.plan(
        lab, State(), live.parse({"set": {"interface": "r2:eth0", "rate": "1mbit"}})
    )
    assert State.from_dict(state.to_dict()) == state
    assert live.parse({"down": {"link": "r1:eth1"}}).describe() == "down link r1:eth1"
