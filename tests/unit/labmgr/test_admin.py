"""The admin pages an administrator uses, rendered for the superuser."""

from __future__ import annotations

import json

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_create
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_import

TWO_ROUTERS = """\
labfile: 2
name: pair
nodes: {r1: {}, r2: {}}
links:
  - endpoints: [r1:eth1, r2:eth1]
    ipv4: [10.0.12.1/30, 10.0.12.2/30]
    ipv6: ["fd00:12::1/64", "fd00:12::2/64"]
    mtu: 9000
    impairments: {r1:eth1: {delay: 5ms}}
"""


@pytest.fixture
def admin_client_(client: Client, root: User) -> Client:
    client.force_login(root)
    return client


@pytest.fixture
def deployment(alice_lab: Lab, alice: User) -> Deployment:
    return deployment_create(lab=alice_lab, owner=alice)


@pytest.mark.parametrize(
    "model",
    [
        "labs/lab",
        "labs/network",
        "labs/node",
        "labs/attachment",
        "labs/link",
        "hosts/host",
        "deployments/deployment",
        "deployments/deploymentstep",
    ],
)
def test_every_changelist_renders(
    admin_client_: Client, deployment: Deployment, model: str
) -> None:
    Host.objects.create(name="Node A", slug="node-a")
    response = admin_client_.get(f"/admin/{model}/?q=demo")
    assert response.status_code == 200


def test_the_lab_changelist_offers_the_import(admin_client_: Client, alice_lab: Lab) -> None:
    page = admin_client_.get("/admin/labs/lab/").content.decode()
    assert "Import labfile" in page
    assert "demo" in page


def test_the_lab_page_shows_inlines_and_the_labfile_buttons(
    admin_client_: Client, alice_lab: Lab
) -> None:
    page = admin_client_.get(f"/admin/labs/lab/{alice_lab.pk}/change/").content.decode()
    for text in ("Export YAML", "Export JSON", "Plan", "Edit labfile", "10.10.0.0/24", "client"):
        assert text in page


def test_the_lab_page_shows_its_links(admin_client_: Client, alice: User) -> None:
    lab = lab_import(owner=alice, text=TWO_ROUTERS)
    page = admin_client_.get(f"/admin/labs/lab/{lab.pk}/change/").content.decode()
    for text in ("r1:eth1", "r2:eth1", "10.0.12.1/30", "fd00:12::2/64", "9000", "5ms"):
        assert text in page
    link = lab.links.get()
    assert admin_client_.get(f"/admin/labs/link/{link.pk}/change/").status_code == 200


@pytest.mark.parametrize("path", ["labs/node", "labs/network", "deployments/deployment"])
def test_view_only_pages_render(
    admin_client_: Client, alice_lab: Lab, deployment: Deployment, path: str
) -> None:
    obj = {"labs/node": alice_lab.nodes.first(), "labs/network": alice_lab.networks.first()}.get(
        path, deployment
    )
    assert obj is not None
    response = admin_client_.get(f"/admin/{path}/{obj.pk}/change/")
    assert response.status_code == 200


def test_the_description_and_groups_are_saved_through_the_service(
    admin_client_: Client, alice_lab: Lab, class_a: object
) -> None:
    response = admin_client_.post(
        f"/admin/labs/lab/{alice_lab.pk}/change/",
        {
            "description": "from the admin",
            "shared_with": [class_a.pk],  # type: ignore[attr-defined]
            "networks-TOTAL_FORMS": "0",
            "networks-INITIAL_FORMS": "1",
            "nodes-TOTAL_FORMS": "0",
            "nodes-INITIAL_FORMS": "2",
            "links-TOTAL_FORMS": "0",
            "links-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    alice_lab.refresh_from_db()
    assert alice_lab.description == "from the admin"
    assert [g.name for g in alice_lab.shared_with.all()] == ["class-a"]


def test_export_views_download_the_labfile(admin_client_: Client, alice_lab: Lab) -> None:
    as_yaml = admin_client_.get(f"/admin/labs/lab/{alice_lab.pk}/export/yaml/")
    assert as_yaml["Content-Disposition"] == 'attachment; filename="demo.yaml"'
    assert yaml.safe_load(as_yaml.content)["name"] == "demo"
    as_json = admin_client_.get(f"/admin/labs/lab/{alice_lab.pk}/export/json/")
    assert json.loads(as_json.content)["name"] == "demo"


def test_the_plan_view_shows_the_shell_commands(admin_client_: Client, alice_lab: Lab) -> None:
    page = admin_client_.get(f"/admin/labs/lab/{alice_lab.pk}/plan/").content.decode()
    assert '<pre class="commands">' in page
    assert "ip netns add lm1-n0" in page


def test_the_import_view_renders(admin_client_: Client) -> None:
    response = admin_client_.get("/admin/labs/lab/import/")
    assert response.status_code == 200
    assert 'type="file"' in response.content.decode()


def test_importing_pasted_text_creates_the_lab(admin_client_: Client, alice: User) -> None:
    text = "labfile: 1\nname: pasted\nnodes:\n  solo: {}\n"
    response = admin_client_.post(
        "/admin/labs/lab/import/", {"owner": alice.pk, "text": text, "fmt": ""}
    )
    lab = Lab.objects.get(name="pasted")
    assert response["Location"] == f"/admin/labs/lab/{lab.pk}/change/"
    assert lab.owner == alice


def test_importing_a_file_creates_the_lab(admin_client_: Client, root: User) -> None:
    upload = SimpleUploadedFile("up.json", b'{"labfile": 1, "name": "uploaded"}')
    admin_client_.post("/admin/labs/lab/import/", {"owner": root.pk, "file": upload})
    assert Lab.objects.filter(name="uploaded", owner=root).exists()


def test_import_errors_are_shown_with_their_field_paths(admin_client_: Client, alice: User) -> None:
    text = "labfile: 1\nname: bad\nnodes:\n  web:\n    limits: {memory: 12Q}\n"
    response = admin_client_.post(
        "/admin/labs/lab/import/", {"owner": alice.pk, "text": text, "fmt": "yaml"}
    )
    assert response.status_code == 200
    assert "nodes.web.limits.memory: &quot;12Q&quot; is not a size" in response.content.decode()
    assert not Lab.objects.exists()


def test_edit_labfile_replaces_the_lab(admin_client_: Client, alice_lab: Lab) -> None:
    form = admin_client_.get(f"/admin/labs/lab/{alice_lab.pk}/labfile/").content.decode()
    assert "name: demo" in form
    text = "labfile: 1\nname: demo\ndescription: edited\nnodes:\n  solo: {}\n"
    admin_client_.post(f"/admin/labs/lab/{alice_lab.pk}/labfile/", {"text": text})
    alice_lab.refresh_from_db()
    assert alice_lab.description == "edited"
    assert [n.name for n in alice_lab.nodes.all()] == ["solo"]


def test_deleting_a_lab_with_a_live_deployment_is_refused(
    admin_client_: Client, alice_lab: Lab, alice: User
) -> None:
    Deployment.objects.create(lab=alice_lab, owner=alice, status=DeploymentStatus.RUNNING)
    response = admin_client_.get(f"/admin/labs/lab/{alice_lab.pk}/delete/", follow=True)
    assert "has a deployment that is not finished" in response.content.decode()
    assert Lab.objects.filter(pk=alice_lab.pk).exists()


def test_a_user_without_staff_rights_cannot_reach_the_admin_views(
    client: Client, alice: User, alice_lab: Lab
) -> None:
    client.force_login(alice)
    response = client.get(f"/admin/labs/lab/{alice_lab.pk}/plan/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
