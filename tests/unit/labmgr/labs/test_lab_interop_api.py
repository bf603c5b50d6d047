"""/api/labs/import and /export with other tools' files: a containerlab topology or a
compose file becomes a lab with notes, a refusal names the file's own fields and makes
nothing, and a lab exports as either with what they cannot hold as comments."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import yaml
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.labs.models import Lab

Api = Callable[[User | None], APIClient]

TOPOLOGY = textwrap.dedent(
    """
    name: pair
    topology:
      nodes:
        r1: {kind: linux, image: alpine:3.20}
        r2: {kind: linux, image: alpine:3.20}
      links:
        - endpoints: ["r1:eth1", "r2:eth1"]
    """
)

COMPOSE = textwrap.dedent(
    """
    name: shop
    services:
      web:
        image: nginx:1.27
        mem_limit: 128m
        networks: [front]
    networks:
      front:
        ipam:
          config: [{subnet: 10.231.5.0/24}]
    """
)


def test_a_containerlab_topology_imports_as_a_lab_with_notes(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/import", TOPOLOGY, content_type="application/yaml")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "pair"
    assert set(body["labfile"]["nodes"]) == {"r1", "r2"}
    assert body["labfile"]["links"][0]["endpoints"] == ["r1:eth1", "r2:eth1"]
    assert any(note.startswith("mgmt:") for note in body["notes"])
    assert Lab.objects.get(owner=alice, name="pair")


def test_a_compose_file_named_by_format_imports(api: Api, alice: User) -> None:
    response = api(alice).post(
        "/api/labs/import?format=docker-compose", COMPOSE, content_type="application/yaml"
    )
    assert response.status_code == 201, response.json()
    labfile = response.json()["labfile"]
    assert labfile["networks"]["front"]["subnet"] == "10.231.5.0/24"
    assert labfile["nodes"]["web"]["limits"]["memory"] == "128M"


def test_a_refused_topology_names_its_own_field_and_makes_no_lab(api: Api, alice: User) -> None:
    text = TOPOLOGY.replace("r1: {kind: linux, image: alpine:3.20}", "r1: {kind: ceos}")
    response = api(alice).post("/api/labs/import", text, content_type="application/yaml")
    assert response.status_code == 400
    assert "topology.nodes.r1.kind" in response.json()["errors"]
    assert not Lab.objects.filter(owner=alice).exists()


def test_an_unknown_import_format_is_a_400_naming_the_field(api: Api, alice: User) -> None:
    response = api(alice).post(
        "/api/labs/import?format=gns3", TOPOLOGY, content_type="application/yaml"
    )
    assert response.status_code == 400
    [message] = response.json()["errors"]["format"]
    assert message == "'gns3' is not a format; use labfile, containerlab, compose."
    assert not Lab.objects.filter(owner=alice).exists()


def test_a_lab_exports_as_a_topology_that_imports_back(
    api: Api, alice: User, alice_lab: Lab
) -> None:
    response = api(alice).get(f"/api/labs/{alice_lab.pk}/export?format=clab")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="demo.clab.yml"'
    text = response.content.decode()
    before = api(alice).get(f"/api/labs/{alice_lab.pk}/").json()["labfile"]
    assert set(yaml.safe_load(text)["topology"]["nodes"]) == set(before["nodes"])
    alice_lab.delete()
    again = api(alice).post("/api/labs/import", text, content_type="application/yaml")
    assert again.status_code == 201, again.json()
    assert again.json()["labfile"]["nodes"].keys() == before["nodes"].keys()


def test_a_compose_export_lists_what_it_cannot_hold_as_comments(
    api: Api, alice: User, alice_lab: Lab
) -> None:
    response = api(alice).get(f"/api/labs/{alice_lab.pk}/export?format=compose")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="demo.compose.yaml"'
    text = response.content.decode()
    assert "services" in yaml.safe_load(text)
    comments = [line for line in text.splitlines() if line.startswith("# labmgr: ")]
    assert all(len(line) > len("# labmgr: ") for line in comments)


def test_an_export_in_an_unknown_format_names_every_format(
    api: Api, alice: User, alice_lab: Lab
) -> None:
    response = api(alice).get(f"/api/labs/{alice_lab.pk}/export?format=xml")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "format": ["'xml' is not a format; use yaml, json, containerlab, compose."]
    }


BINDS = textwrap.dedent(
    """
    name: binds
    topology:
      nodes:
        data: {kind: linux, image: alpine:3.20, binds: ["/srv/data:/data:ro"]}
        side: {kind: linux, image: alpine:3.20, network-mode: host}
    """
)

SERVICES = textwrap.dedent(
    """
    services:
      db:
        image: postgres:16
        privileged: true
        volumes: [{type: bind, source: /var/lib/pg, target: /var/lib/postgresql/data}]
        networks: [lan]
      copy:
        image: alpine:3.20
        volumes_from: [db]
        networks: [lan]
    networks:
      lan:
        driver: macvlan
        driver_opts: {parent: eth9}
        ipam:
          config: [{subnet: 10.231.6.0/24}]
    """
)


def test_what_only_an_admin_may_import_is_refused_by_the_topologys_own_fields(
    api: Api, alice: User
) -> None:
    response = api(alice).post("/api/labs/import", BINDS, content_type="application/yaml")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"topology.nodes.data.binds.0", "topology.nodes.side.network-mode"}
    [bind] = errors["topology.nodes.data.binds.0"]
    assert bind.startswith("only an admin may mount a path of the host (/srv/data)")
    [host] = errors["topology.nodes.side.network-mode"]
    assert host.startswith("driver: ")
    assert not Lab.objects.filter(owner=alice).exists()


def test_what_only_an_admin_may_import_is_refused_by_the_compose_files_own_fields(
    api: Api, alice: User
) -> None:
    response = api(alice).post(
        "/api/labs/import?format=compose", SERVICES, content_type="application/yaml"
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {
        "networks.lan.driver_opts.parent",
        "services.db",
        "services.db.volumes.0",
        "services.copy.volumes_from.0",
    }
    assert errors["services.db"] == ["privileged: only an admin may run a privileged node"]
    assert "/var/lib/pg" in errors["services.copy.volumes_from.0"][0]
    assert not Lab.objects.exists()


def test_an_admin_imports_the_same_files(api: Api, admin_user: User) -> None:
    for text, fmt in ((BINDS, "containerlab"), (SERVICES, "compose")):
        response = api(admin_user).post(
            f"/api/labs/import?format={fmt}", text, content_type="application/yaml"
        )
        assert response.status_code == 201, response.json()
    document = yaml.safe_load(Lab.objects.get(name="binds").document)
    mounts = document["nodes"]["data"]["mounts"]
    assert mounts == [{"host": "/srv/data", "path": "/data", "readonly": True}]
