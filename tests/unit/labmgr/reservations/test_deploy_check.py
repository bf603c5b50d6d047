"""What a deployment must pass: an active reservation whose share fits the lab, a quota."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from labmgr.accounts.services import profile_set, quota_check_deploy
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_create
from labmgr.errors import ApplicationError, NotAllowed
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create
from labmgr.reservations.selectors import reservation_active_for
from labmgr.reservations.services import reservation_budget, reservation_check_deploy
from labplan.naming import base36
from tests.unit.labmgr.conftest import small_labfile
from tests.unit.labmgr.reservations.helpers import GIB, WHOLE, Book, Clock, at, share


def limited_lab(owner: User, name: str, memory: str = "1G", cpus: float = 1, pids: int = 50) -> Lab:
    tree: dict[str, Any] = small_labfile(name)
    for node in tree["nodes"].values():
        node["limits"] = {"memory": memory, "cpus": cpus, "pids": pids}
    return lab_create(owner=owner, labfile_tree=tree)


def test_the_active_reservation_is_the_one_running_now(
    book: Book, alice: User, server: Host, now: Clock
) -> None:
    later = book(alice, 1, 2, WHOLE)
    assert reservation_active_for(user=alice, host=server, at=at(0.5)) is None
    assert reservation_active_for(user=alice, host=server, at=at(1)) == later
    assert reservation_active_for(user=alice, host=server, at=at(2)) is None


def test_a_deployment_outside_a_reservation_is_refused(
    alice: User, server: Host, alice_lab: Lab, now: Clock
) -> None:
    with pytest.raises(NotAllowed) as refused:
        reservation_check_deploy(user=alice, host=server, lab=alice_lab)
    assert refused.value.errors == {
        "host": ["You have no reservation of server now; deployments run inside one."]
    }


def test_admins_and_single_user_installs_need_no_reservation(
    alice: User, root: User, server: Host, alice_lab: Lab, now: Clock, settings: Any
) -> None:
    assert reservation_check_deploy(user=root, host=server, lab=alice_lab) is None
    settings.LABMGR_REQUIRE_RESERVATION = False
    assert reservation_check_deploy(user=alice, host=server, lab=alice_lab) is None


def test_a_lab_that_fits_the_share_is_accepted_with_its_budget(
    book: Book, alice: User, server: Host, now: Clock
) -> None:
    mine = book(alice, 0, 2, share(cpus=2, memory=2 * GIB, pids=100))
    lab = limited_lab(alice, "fits", memory="1G", cpus=1, pids=50)
    assert reservation_check_deploy(user=alice, host=server, lab=lab) == mine
    assert reservation_budget(mine) == {
        "reservation": mine.pk,
        "cgroup": "r" + base36(mine.pk),
        "cpus": 2.0,
        "memory": 2 * GIB,
        "pids": 100,
    }


def test_the_labs_limits_with_the_running_ones_must_fit_the_share(
    book: Book, alice: User, server: Host, now: Clock
) -> None:
    book(alice, 0, 2, share(cpus=4, memory=3 * GIB, pids=1000))
    running = limited_lab(alice, "running", memory="1G")  # two nodes: 2G
    deployment_create(lab=running, owner=alice, host=server)
    second = limited_lab(alice, "second", memory="1G")
    with pytest.raises(ApplicationError) as refused:
        reservation_check_deploy(user=alice, host=server, lab=second)
    assert refused.value.errors == {
        "limits.memory": [
            "Your labs on server would set 4G of memory in limits; your reservation holds 3G."
        ]
    }
    # Redeploying the running lab replaces its own deployment: it still fits.
    assert reservation_check_deploy(user=alice, host=server, lab=running) is not None


def test_nodes_without_limits_fit_any_share(
    book: Book, alice: User, server: Host, alice_lab: Lab, now: Clock
) -> None:
    book(alice, 0, 2, share(cpus=0.5, memory=GIB, pids=10))
    assert reservation_check_deploy(user=alice, host=server, lab=alice_lab) is not None


def test_the_reservation_is_over_once_it_ends(
    book: Book, alice: User, server: Host, alice_lab: Lab, now: Clock
) -> None:
    book(alice, 0, 1, WHOLE)
    now.advance(hours=1)
    with pytest.raises(NotAllowed):
        reservation_check_deploy(user=alice, host=server, lab=alice_lab)


def test_a_quota_of_deployments_at_once_is_enforced(alice: User, server: Host) -> None:
    profile_set(user=alice, max_deployments=1)
    first = limited_lab(alice, "first")
    quota_check_deploy(user=alice, lab=first)
    deployment_create(lab=first, owner=alice, host=server)
    with pytest.raises(NotAllowed) as refused:
        quota_check_deploy(user=alice, lab=limited_lab(alice, "second"))
    assert refused.value.errors == {
        "deployments": ["Your quota is 1 deployment(s) at once; destroy one first."]
    }
    assert Deployment.objects.count() == 1


def test_a_memory_quota_counts_every_running_lab_and_needs_limits(
    alice: User, alice_lab: Lab, server: Host
) -> None:
    profile_set(user=alice, max_memory=3 * GIB)
    deployment_create(lab=limited_lab(alice, "running", memory="1G"), owner=alice, host=server)
    with pytest.raises(NotAllowed) as refused:
        quota_check_deploy(user=alice, lab=limited_lab(alice, "more", memory="1G"))
    assert refused.value.errors == {
        "limits.memory": ["Your labs would use 4G of memory together; your quota is 3G."]
    }
    with pytest.raises(NotAllowed) as unlimited:
        quota_check_deploy(user=alice, lab=alice_lab)
    assert unlimited.value.errors["nodes.client.limits.memory"] == [
        "Your memory quota needs every node to set a memory limit."
    ]


def test_admins_have_no_quota(root: User, server: Host) -> None:
    profile_set(user=root, max_deployments=0)
    quota_check_deploy(user=root, lab=limited_lab(root, "any"))
