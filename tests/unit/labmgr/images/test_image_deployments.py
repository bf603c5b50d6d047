"""A lab of image nodes through the control plane: its rows keep what the labfile says,
its deploy pulls each image first with the registry's login sealed for the host, the
digests its apply ran are recorded, a redeploy runs the same digests, and the lab page
says which image each node runs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from labmgr.deployments import tasks as deployment_tasks
from labmgr.deployments.lifecycle import deployment_deploy, deployment_redeploy
from labmgr.deployments.models import Deployment
from labmgr.hosts.models import Host
from labmgr.images.models import RegistryLogin
from labmgr.labs import spec
from labmgr.labs.models import Lab, Node
from labmgr.labs.services import lab_create
from labplan import envelope
from tests.unit.labmgr.conftest import Dispatched

ALPINE = "docker.io/library/alpine:3.20"
ROUTER = "registry.example:5000/team/router:1"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_R = "sha256:" + "e" * 64
TREE: dict[str, Any] = {
    "labfile": 1,
    "name": "images",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.20.0.0/24"}},
    "nodes": {
        "web": {"image": "alpine:3.20", "networks": {"lan": {}}},
        "router": {
            "image": ROUTER,
            "entrypoint": ["/usr/lib/frr/docker-start"],
            "command": [],
            "user": "frr",
            "networks": {"lan": {}},
        },
        "plain": {"networks": {"lan": {}}},
    },
}


@pytest.fixture
def lab(alice: User) -> Lab:
    return lab_create(owner=alice, labfile_tree=TREE)


@pytest.fixture
def online_host(online_host: Host) -> Host:
    """The local host, able to pull and unpack images (skopeo and umoci installed)."""
    online_host.facts = {**online_host.facts, "image_tools": True}
    online_host.save(update_fields=["facts"])
    return online_host


def test_a_host_that_cannot_pull_images_refuses_the_lab_saying_why(
    lab: Lab, alice: User, online_host: Host, dispatched: Dispatched
) -> None:
    from labmgr.errors import ApplicationError

    Host.objects.filter(pk=online_host.pk).update(facts={"kernel": "6.1.0"})
    with pytest.raises(ApplicationError) as refused:
        deployment_deploy(lab=lab, actor=alice)
    assert "lacks images (skopeo and umoci)" in refused.value.message
    assert dispatched.sent == []


def pulls(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [
        (op["ref"], op["digest"])
        for part in plan["hosts"]
        for op in part["ops"]
        if op["op"] == "pull_image"
    ]


def test_the_rows_keep_an_image_node_as_the_labfile_says(lab: Lab) -> None:
    router = Node.objects.get(lab=lab, name="router")
    assert (router.image, router.rootfs, router.entrypoint, router.command, router.user) == (
        ROUTER,
        "",
        ["/usr/lib/frr/docker-start"],
        [],
        "frr",
    )
    web = Node.objects.get(lab=lab, name="web")
    assert (web.image, web.command, web.entrypoint, web.workdir) == (ALPINE, None, None, "")
    nodes = {n.name: n for n in spec.lab_to_labfile(lab).nodes}
    assert (nodes["web"].image, nodes["web"].command, nodes["web"].rootfs) == (ALPINE, None, None)
    assert nodes["router"].user == "frr"
    assert (nodes["plain"].rootfs, nodes["plain"].image) == ("host", None)


def test_a_deploy_pulls_each_image_first_with_its_registrys_login_sealed(
    lab: Lab,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    django_capture_on_commit_callbacks: Any,
) -> None:
    RegistryLogin.objects.create(registry="registry.example:5000", username="ci", password="pw")
    with django_capture_on_commit_callbacks(execute=True):
        deployment = deployment_deploy(lab=lab, actor=alice)
    assert sorted(pulls(deployment.plan)) == [(ALPINE, None), (ROUTER, None)]
    assert deployment.plan["hosts"][0]["ops"][0]["op"] == "pull_image"
    (task, host, kwargs) = dispatched.sent[0]
    assert (task, host) == ("apply", "local")
    logins = json.loads(envelope.open_secret(bytes.fromhex(online_host.key), kwargs["registries"]))
    assert logins == [{"registry": "registry.example:5000", "username": "ci", "password": "pw"}]


def test_a_redeploy_runs_the_digests_the_deployment_ran(
    lab: Lab,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    django_capture_on_commit_callbacks: Any,
) -> None:
    deployment = deployment_deploy(lab=lab, actor=alice)
    deployment_tasks.deployment_result(
        deployment=deployment.pk,
        action="apply",
        ok=True,
        error="",
        nodes=[],
        images={ALPINE: DIGEST_A, ROUTER: DIGEST_R},
    )
    with django_capture_on_commit_callbacks(execute=True):
        redeployed = deployment_redeploy(
            deployment=Deployment.objects.get(pk=deployment.pk), actor=alice
        )
    assert sorted(pulls(redeployed.plan)) == [(ALPINE, DIGEST_A), (ROUTER, DIGEST_R)]
    assert dispatched.sent[-1][2]["previous"] == deployment.plan


def test_the_lab_page_says_which_image_each_node_runs(
    client: Client, lab: Lab, alice: User, online_host: Host, dispatched: Dispatched
) -> None:
    deployment = deployment_deploy(lab=lab, actor=alice)
    deployment_tasks.deployment_result(
        deployment=deployment.pk,
        action="apply",
        ok=True,
        error="",
        nodes=[],
        images={ALPINE: DIGEST_A},
    )
    client.force_login(alice)
    html = client.get(f"/labs/{lab.pk}/").content.decode()
    assert f"image {ALPINE} (sha256:aaaaaaaaaaaa…)" in html
    assert f"image {ROUTER}</span>" in html
    assert html.count('class="node-image') == 2  # not the node of the host's tree
