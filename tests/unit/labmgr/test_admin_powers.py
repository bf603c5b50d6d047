"""Powers that reach the host (a host network, a host interface as parent, a directory as
rootfs, a namespace off, a privileged node, a host path mounted into a node) are an
admin's alone, at every step: a plain user is refused on import, save, copy and again
at deploy and redeploy, each refusal naming the field, with nothing stored, no
deployment and no job sent. An admin may make such a lab for a student; only an admin
deploys it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from labmgr.accounts.models import TemplateCopy
from labmgr.accounts.services import classroom_create, template_copy, template_publish
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.selectors import lab_export
from labmgr.labs.services import lab_create, lab_update
from labmgr.web.models import LabDraft
from labplan.errors import LabfileError
from tests.unit.labmgr.conftest import Dispatched, small_labfile

Api = Callable[[User | None], APIClient]
Tree = dict[str, Any]


def host_network(tree: Tree) -> None:
    tree["networks"]["hostnet"] = {"driver": "host"}
    tree["nodes"]["probe"] = {"networks": {"hostnet": {}}}


def host_parent(tree: Tree) -> None:
    # Data only: no test deploys it, and it names no interface of this machine.
    tree["networks"]["wan"] = {"driver": "macvlan", "subnet": "10.30.0.0/24", "parent": "host:lm0"}


def rootfs_directory(tree: Tree) -> None:
    tree["nodes"]["web"]["rootfs"] = "/srv/rootfs"


def host_mount(tree: Tree) -> None:
    # Data only: the path is never bound, no test deploys it.
    tree["labfile"] = 2
    tree["nodes"]["web"]["mounts"] = [{"host": "/etc", "path": "/host-etc", "readonly": True}]


def privileged(tree: Tree) -> None:
    tree["nodes"]["web"]["privileged"] = True


def namespace_off(tree: Tree) -> None:
    tree["nodes"]["client"].update(privileged=True, namespaces={"pid": False, "user": True})


POWERS = [
    (host_network, ["networks.hostnet.driver"]),
    (host_parent, ["networks.wan.parent"]),
    (rootfs_directory, ["nodes.web.rootfs"]),
    (privileged, ["nodes.web.privileged"]),
    (host_mount, ["nodes.web.mounts.0.host"]),
    (namespace_off, ["nodes.client.namespaces.pid", "nodes.client.privileged"]),
]
EVERY_POWER_FIELDS = [
    "networks.hostnet.driver",
    "networks.wan.parent",
    "nodes.client.namespaces.pid",
    "nodes.client.privileged",
    "nodes.web.rootfs",
    "nodes.web.privileged",
    "nodes.web.mounts.0.host",
]


def with_powers(*powers: Callable[[Tree], None], name: str = "demo") -> Tree:
    tree = small_labfile(name)
    for power in powers:
        power(tree)
    return tree


def every_power(name: str = "demo") -> Tree:
    return with_powers(*(power for power, _ in POWERS), name=name)


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """A request and the after-commit work it scheduled (the dispatch of jobs)."""

    def call(client: APIClient, method: str, url: str, data: Any = None, **kw: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(url, data, **({"format": "json"} | kw))

    return call


# --- import, create, update: REST ----------------------------------------------------------


@pytest.mark.parametrize(("power", "fields"), POWERS, ids=[p.__name__ for p, _ in POWERS])
def test_a_user_may_not_create_a_lab_using_a_host_power(
    api: Api, alice: User, power: Callable[[Tree], None], fields: list[str]
) -> None:
    response = api(alice).post("/api/labs/", {"labfile": with_powers(power)}, format="json")

    assert response.status_code == 400
    assert response.json()["detail"] == "The labfile is invalid."
    assert sorted(response.json()["errors"]) == sorted(fields)
    assert all(m[0].startswith("only an admin may") for m in response.json()["errors"].values())
    assert not Lab.objects.exists()


def test_an_import_names_every_host_power_at_once(api: Api, alice: User) -> None:
    text = yaml.safe_dump(every_power())
    response = api(alice).post("/api/labs/import", text, content_type="application/yaml")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == EVERY_POWER_FIELDS
    assert not Lab.objects.exists()


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_user_may_not_add_a_host_power_to_their_lab(
    api: Api, alice: User, alice_lab: Lab, method: str
) -> None:
    before = lab_export(lab=alice_lab, fmt="json")
    response = getattr(api(alice), method)(
        f"/api/labs/{alice_lab.pk}/", {"labfile": every_power()}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == EVERY_POWER_FIELDS
    alice_lab.refresh_from_db()
    assert lab_export(lab=alice_lab, fmt="json") == before


def test_an_admin_creates_and_imports_labs_with_host_powers(api: Api, root: User) -> None:
    created = api(root).post("/api/labs/", {"labfile": every_power("made")}, format="json")
    text = yaml.safe_dump(every_power("imported"))
    imported = api(root).post("/api/labs/import", text, content_type="application/yaml")

    assert (created.status_code, imported.status_code) == (201, 201)
    assert created.json()["labfile"]["nodes"]["web"]["privileged"] is True
    assert imported.json()["labfile"]["networks"]["hostnet"]["driver"] == "host"


# --- the browser: editor, import, examples --------------------------------------------------


def test_the_editor_keeps_a_users_host_powers_as_a_draft_naming_them(
    client: Client, alice_lab: Lab
) -> None:
    client.force_login(alice_lab.owner)
    before = alice_lab.document
    text = yaml.safe_dump(every_power())

    page = client.post(f"/labs/{alice_lab.pk}/edit/", {"text": text}).content.decode()

    assert "Saved as a draft" in page
    for field in EVERY_POWER_FIELDS:
        assert field in page
    # (a draft keeps its errors in a JSON column, whose key order PostgreSQL does not keep)
    assert sorted(LabDraft.objects.get(lab=alice_lab).errors) == sorted(EVERY_POWER_FIELDS)
    alice_lab.refresh_from_db()
    assert alice_lab.document == before


def test_a_web_import_of_host_powers_creates_no_lab(client: Client, alice: User) -> None:
    client.force_login(alice)
    text = yaml.safe_dump(every_power())

    response = client.post("/labs/new/", {"import": "1", "import-text": text}, follow=True)

    assert response.status_code == 200
    assert "networks.hostnet.driver" in response.content.decode()
    assert not Lab.objects.exists()
    # (a draft keeps its errors in a JSON column, whose key order PostgreSQL does not keep)
    assert sorted(LabDraft.objects.get(owner=alice).errors) == sorted(EVERY_POWER_FIELDS)


def test_a_user_may_not_copy_the_host_network_example(client: Client, alice: User) -> None:
    client.force_login(alice)
    gallery = client.get("/examples/").content.decode()
    assert "Admins only: it uses networks.hostnet.driver" in gallery

    response = client.post("/examples/host-network/copy", follow=True)

    assert response.redirect_chain[-1][0].endswith("/examples/")
    page = response.content.decode()
    assert "cannot be copied into your labs: networks.hostnet.driver: only an admin" in page
    assert not Lab.objects.exists()


def test_an_admin_copies_the_host_network_example(client: Client, root: User) -> None:
    client.force_login(root)
    client.post("/examples/host-network/copy")
    assert Lab.objects.get(owner=root).name == "host-network"


# --- the admin panel: an admin is who asks --------------------------------------------------


def test_the_admin_panel_imports_and_edits_host_powers_for_a_student(
    client: Client, root: User, alice: User
) -> None:
    client.force_login(root)
    text = yaml.safe_dump(with_powers(privileged, name="given"))
    client.post("/admin/labs/lab/import/", {"owner": alice.pk, "text": text, "fmt": "yaml"})
    lab = Lab.objects.get(owner=alice, name="given")

    edited = yaml.safe_dump(with_powers(privileged, host_network, name="given"))
    client.post(f"/admin/labs/lab/{lab.pk}/labfile/", {"text": edited})

    assert lab.networks.get(name="hostnet").driver == "host"
    assert lab.nodes.get(name="web").privileged is True


# --- copies of an admin's template ----------------------------------------------------------


@pytest.fixture
def admins_template(root: User, alice: User) -> Any:
    """A privileged lab of root's, published to a class alice is in."""
    classroom = classroom_create(name="net101", teacher=root, members=[alice])
    lab = lab_create(owner=root, labfile_tree=with_powers(privileged, name="tpl"))
    return template_publish(actor=root, classroom=classroom, lab=lab)


def test_a_student_copying_an_admins_template_is_refused_its_host_powers(
    admins_template: Any, alice: User
) -> None:
    with pytest.raises(LabfileError) as refused:
        template_copy(template=admins_template, member=alice, actor=alice)

    assert refused.value.as_dict() == {
        "nodes.web.privileged": ["only an admin may run a privileged node"]
    }
    assert not TemplateCopy.objects.exists()
    assert not Lab.objects.filter(owner=alice).exists()


def test_a_copy_an_admin_made_for_a_student_only_an_admin_deploys(
    admins_template: Any,
    alice: User,
    root: User,
    api: Api,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
) -> None:
    copy = template_copy(template=admins_template, member=alice, actor=root)

    refused = run(api(alice), "post", f"/api/labs/{copy.lab.pk}/deploy")

    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "Only an admin may deploy this lab: it uses nodes.web.privileged.",
        "errors": {"nodes.web.privileged": ["only an admin may run a privileged node"]},
    }
    assert not Deployment.objects.exists()
    assert dispatched.sent == []
    assert run(api(root), "post", f"/api/labs/{copy.lab.pk}/deploy").status_code == 202
    assert dispatched.tasks() == ["apply"]


# --- deploy and redeploy check who deploys ---------------------------------------------------


@pytest.fixture
def given_lab(alice: User, root: User) -> Lab:
    """A lab of alice's with every host power, made for her by root."""
    return lab_create(owner=alice, labfile_tree=every_power(), actor=root)


def test_a_student_may_not_deploy_the_host_powers_an_admin_gave_their_lab(
    api: Api, alice: User, given_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    response = run(api(alice), "post", f"/api/labs/{given_lab.pk}/deploy")

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Only an admin may deploy this lab: it uses " + ", ".join(EVERY_POWER_FIELDS) + "."
    )
    assert list(response.json()["errors"]) == EVERY_POWER_FIELDS
    assert not Deployment.objects.exists()
    assert dispatched.sent == []


def test_an_admin_deploys_the_lab_they_gave_host_powers(
    api: Api, root: User, given_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    response = run(api(root), "post", f"/api/labs/{given_lab.pk}/deploy")

    assert response.status_code == 202
    [(task, _, kwargs)] = dispatched.sent
    spawns = [op for op in kwargs["plan"]["hosts"][0]["ops"] if op["op"] == "spawn_node"]
    assert task == "apply" and {op["node"]: op["privileged"] for op in spawns}["web"] is True


def test_a_student_may_not_redeploy_host_powers_added_while_it_runs(
    api: Api,
    alice: User,
    root: User,
    alice_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
) -> None:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    running = Deployment.objects.get(pk=body["id"])
    lab_update(lab=alice_lab, labfile_tree=with_powers(privileged), actor=root)
    sent = len(dispatched.sent)

    response = run(api(alice), "post", f"/api/deployments/{running.pk}/redeploy")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["nodes.web.privileged"]
    fresh = Deployment.objects.get(pk=running.pk)
    assert (fresh.status, fresh.plan, fresh.labfile) == ("running", running.plan, running.labfile)
    assert len(dispatched.sent) == sent
    assert run(api(root), "post", f"/api/deployments/{running.pk}/redeploy").status_code == 202
    assert dispatched.tasks()[sent:] == ["apply"]


def test_a_plain_lab_deploys_as_before(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    assert run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").status_code == 202
    assert dispatched.tasks() == ["apply"]
