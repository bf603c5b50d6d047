"""The agent's side of a lab placed on several hosts: the underlay address it reports
comes from its configuration only, and its deployment reports name its host."""

from __future__ import annotations

import pytest

from workers import config
from workers.facts import Facts


def test_the_underlay_address_is_read_from_the_agents_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LABMGR_AGENT_UNDERLAY", " 192.0.2.7 ")
    assert config.underlay() == "192.0.2.7"


def test_without_the_setting_no_underlay_address_is_guessed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LABMGR_AGENT_UNDERLAY", raising=False)
    assert config.underlay() is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("eth0", "is not an IPv4 address"),
        ("127.0.0.1", "cannot be reached from another host"),
        ("0.0.0.0", "cannot be reached from another host"),
    ],
)
def test_a_bad_underlay_setting_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv("LABMGR_AGENT_UNDERLAY", value)
    with pytest.raises(ValueError, match=reason):
        config.underlay()


def test_the_underlay_fact_survives_the_round_trip_and_is_optional() -> None:
    facts = {
        "kernel": "6.1",
        "cgroup_mode": "v2",
        "cgroup_controllers": ["cpu"],
        "link_kinds": ["veth", "vxlan"],
        "qdiscs": [],
        "user_namespaces": True,
        "nftables": False,
        "iptables": False,
    }
    assert Facts.from_dict(facts).underlay is None
    with_underlay = Facts.from_dict({**facts, "underlay": "192.0.2.7"})
    assert with_underlay.to_dict()["underlay"] == "192.0.2.7"
