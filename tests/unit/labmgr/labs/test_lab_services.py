from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError, Conflict
from labmgr.labs.models import Lab
from labmgr.labs.selectors import lab_export
from labmgr.labs.services import lab_create, lab_delete, lab_import, lab_update
from labplan.errors import LabfileError

Tree = Callable[..., dict[str, Any]]


def _privileged(tree: dict[str, Any]) -> dict[str, Any]:
    tree["nodes"]["web"]["privileged"] = True
    return tree


def test_it_creates_rows_with_every_default_resolved(alice: User, labfile_tree: Tree) -> None:
    lab = lab_create(owner=alice, labfile_tree=labfile_tree("demo"))
    assert (lab.name, lab.description) == ("demo", "Two nodes on one bridge")
    client = lab.nodes.get(name="client").attachments.get()
    # The lowest free host address after the gateway (.1) and web's static .10 ... is .2.
    assert (client.ipv4, client.ifname, client.mac) == ("10.10.0.2", "eth0", "02:42:0a:0a:00:02")
    assert lab.networks.get().gateway == "10.10.0.1"
    assert lab.nodes.get(name="web").limits == {"memory": "256M"}


def test_it_refuses_an_invalid_labfile_naming_the_field(alice: User, labfile_tree: Tree) -> None:
    tree = labfile_tree()
    tree["nodes"]["web"]["limits"]["memory"] = "12Q"
    with pytest.raises(LabfileError) as refused:
        lab_create(owner=alice, labfile_tree=tree)
    assert list(refused.value.as_dict()) == ["nodes.web.limits.memory"]
    assert not Lab.objects.exists()


def test_it_refuses_a_second_lab_with_the_owners_lab_name(
    alice_lab: Lab, alice: User, labfile_tree: Tree
) -> None:
    with pytest.raises(ApplicationError) as refused:
        lab_create(owner=alice, labfile_tree=labfile_tree("demo"))
    assert refused.value.errors == {"name": ["You already have a lab named 'demo'."]}


def test_it_refuses_sharing_with_an_unknown_group(alice: User, labfile_tree: Tree) -> None:
    with pytest.raises(ApplicationError) as refused:
        lab_create(owner=alice, labfile_tree=labfile_tree(), shared_with=["nobody"])
    assert refused.value.errors == {"shared_with": ["No such group: 'nobody'."]}
    assert not Lab.objects.exists()


def test_a_user_may_not_use_admin_only_fields(alice: User, labfile_tree: Tree) -> None:
    with pytest.raises(LabfileError) as refused:
        lab_create(owner=alice, labfile_tree=_privileged(labfile_tree()))
    assert refused.value.as_dict() == {
        "nodes.web.privileged": ["only an admin may run a privileged node"]
    }


def test_an_admin_may_create_a_privileged_lab_for_a_user(
    alice: User, root: User, labfile_tree: Tree
) -> None:
    lab = lab_create(owner=alice, labfile_tree=_privileged(labfile_tree()), actor=root)
    web = lab.nodes.get(name="web")
    assert web.privileged is True
    assert web.namespaces["user"] is False


def test_update_replaces_networks_and_nodes(alice_lab: Lab, labfile_tree: Tree) -> None:
    tree = labfile_tree("renamed", description="one node now")
    del tree["nodes"]["client"]
    lab_update(lab=alice_lab, labfile_tree=tree)
    alice_lab.refresh_from_db()
    assert (alice_lab.name, alice_lab.description) == ("renamed", "one node now")
    assert [n.name for n in alice_lab.nodes.all()] == ["web"]


def test_a_refused_update_changes_nothing(alice_lab: Lab, labfile_tree: Tree) -> None:
    before = lab_export(lab=alice_lab, fmt="yaml")
    tree = labfile_tree()
    tree["networks"]["lan"]["subnet"] = "10.10.0.0/33"
    with pytest.raises(LabfileError):
        lab_update(lab=alice_lab, labfile_tree=tree, description="changed")
    alice_lab.refresh_from_db()
    assert lab_export(lab=alice_lab, fmt="yaml") == before


def test_update_changes_description_and_groups_alone(alice_lab: Lab, class_a: Group) -> None:
    lab_update(lab=alice_lab, description="new words", shared_with=["class-a"])
    alice_lab.refresh_from_db()
    assert alice_lab.description == "new words"
    assert list(alice_lab.shared_with.all()) == [class_a]
    assert "description: new words" in lab_export(lab=alice_lab, fmt="yaml")


def test_update_refuses_a_name_the_owner_already_uses(
    alice: User, alice_lab: Lab, labfile_tree: Tree
) -> None:
    other = lab_create(owner=alice, labfile_tree=labfile_tree("other"))
    with pytest.raises(ApplicationError) as refused:
        lab_update(lab=other, labfile_tree=labfile_tree("demo"))
    assert refused.value.errors == {"name": ["You already have a lab named 'demo'."]}


def test_import_reads_yaml_text(alice: User) -> None:
    text = "labfile: 1\nname: tiny\nnetworks: {}\nnodes:\n  solo: {}\n"
    lab = lab_import(owner=alice, text=text)
    assert lab.name == "tiny"
    assert lab.nodes.get().hostname == "solo"


def test_import_reports_malformed_yaml(alice: User) -> None:
    with pytest.raises(LabfileError) as refused:
        lab_import(owner=alice, text="name: [unclosed\n", fmt="yaml")
    assert list(refused.value.as_dict()) == ["labfile"]


def test_delete_removes_the_lab_and_its_rows(alice_lab: Lab) -> None:
    lab_delete(lab=alice_lab)
    assert not Lab.objects.exists()


def test_delete_is_refused_while_a_deployment_is_running(alice_lab: Lab, alice: User) -> None:
    Deployment.objects.create(lab=alice_lab, owner=alice, status=DeploymentStatus.RUNNING)
    with pytest.raises(Conflict):
        lab_delete(lab=alice_lab)
    assert Lab.objects.filter(pk=alice_lab.pk).exists()
