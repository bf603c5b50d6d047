"""Kernel names: generated from ids, within IFNAMSIZ, owned by exactly one deployment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labplan import naming

MAX_ID = naming.MAX_DEPLOYMENT
deployments = st.integers(min_value=1, max_value=MAX_ID)
indexes = st.integers(min_value=0, max_value=naming.MAX_INDEX)


def all_flat_names(deployment: int, node: int, network: int, attachment: int) -> list[str]:
    return [
        naming.netns_name(deployment, node),
        naming.bridge_name(deployment, network),
        naming.veth_name(deployment, node, attachment),
        naming.vxlan_name(deployment, network),
    ]


def test_names_follow_the_documented_scheme() -> None:
    assert naming.deployment_token(1) == "lm1"
    assert naming.netns_name(1, 0) == "lm1-n0"
    assert naming.bridge_name(1, 2) == "lm1-b2"
    assert naming.veth_name(1, 0, 1) == "lm1-v0x1"
    assert naming.vxlan_name(1, 35) == "lm1-xz"
    assert naming.node_cgroup(1, 36) == "lm1/n10"
    assert naming.link_group(1) == 65537
    assert naming.link_alias(1) == "labmgr:lm1"


def test_every_name_fits_ifnamsiz_at_the_largest_ids() -> None:
    names = all_flat_names(MAX_ID, naming.MAX_INDEX, naming.MAX_INDEX, naming.MAX_INDEX)
    assert max(len(name.encode()) for name in names) <= naming.IFNAMSIZ
    assert naming.veth_name(MAX_ID, 999, 999) == "lmzik0zk-vrrxrr"


@given(deployments, indexes, indexes, indexes)
def test_every_name_fits_ifnamsiz(deployment: int, node: int, network: int, att: int) -> None:
    for name in all_flat_names(deployment, node, network, att):
        assert len(name.encode()) <= naming.IFNAMSIZ, name


@given(deployments, deployments, indexes, indexes, indexes)
def test_names_of_two_deployments_never_collide(
    first: int, second: int, node: int, network: int, att: int
) -> None:
    if first == second:
        return
    for name in all_flat_names(first, node, network, att):
        assert name.startswith(naming.name_prefix(first))
        assert not name.startswith(naming.name_prefix(second))


def test_a_base36_token_that_contains_a_kind_letter_does_not_collide() -> None:
    # Deployment 59 is "1n" in base 36 and node 828 is "n0": without the "-" both netns
    # names would be "lm1nn0".
    assert naming.netns_name(1, 828) == "lm1-nn0"
    assert naming.netns_name(59, 0) == "lm1n-n0"
    assert not naming.netns_name(59, 0).startswith(naming.name_prefix(1))


def test_names_within_one_deployment_are_distinct_for_a_full_lab() -> None:
    deployment = 12345
    veths = {naming.veth_name(deployment, n, a) for n in range(1000) for a in range(0, 1000, 7)}
    assert len(veths) == 1000 * len(range(0, 1000, 7))
    links = {naming.bridge_name(deployment, i) for i in range(1000)}
    links |= {naming.vxlan_name(deployment, i) for i in range(1000)}
    assert len(links) == 2000
    assert not links & veths


@given(deployments)
def test_a_token_reads_back_as_its_deployment(deployment: int) -> None:
    assert naming.deployment_from_token(naming.deployment_token(deployment)) == deployment


@pytest.mark.parametrize("token", ["lm", "lm0", "lm01", "xx1", "lm1-", "LM1", "lmzzzzzz"])
def test_a_malformed_token_names_no_deployment(token: str) -> None:
    assert naming.deployment_from_token(token) is None


@pytest.mark.parametrize("deployment", [0, -1, MAX_ID + 1])
def test_it_refuses_deployment_ids_out_of_range(deployment: int) -> None:
    with pytest.raises(ValueError, match="deployment id"):
        naming.deployment_token(deployment)


def test_it_refuses_indexes_past_a_thousand() -> None:
    with pytest.raises(ValueError, match="index"):
        naming.netns_name(1, 1000)
