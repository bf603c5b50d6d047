"""/api/labs/: what a client sees, for each persona."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labmgr.labs.models import Lab

Api = Callable[[User | None], APIClient]
Tree = Callable[..., dict[str, Any]]


def test_it_lists_only_a_users_own_and_shared_labs(
    api: Api, alice_lab: Lab, shared_lab: Lab, bob: User, charlie: User, alice: User
) -> None:
    names = lambda user: [lab["name"] for lab in api(user).get("/api/labs/").json()["results"]]  # noqa: E731
    assert names(alice) == ["demo", "shared"]
    assert names(bob) == ["shared"]
    assert names(charlie) == []


def test_an_admin_sees_every_lab(api: Api, alice_lab: Lab, root: User) -> None:
    response = api(root).get(f"/api/labs/{alice_lab.pk}/")
    assert response.status_code == 200
    assert response.json()["owner"] == "alice"


def test_the_representation_holds_the_normalised_labfile(
    api: Api, alice: User, alice_lab: Lab, class_a: Any
) -> None:
    body = api(alice).get(f"/api/labs/{alice_lab.pk}/").json()
    assert set(body) == {
        "id",
        "url",
        "name",
        "description",
        "owner",
        "shared_with",
        "created",
        "updated",
        "labfile",
    }
    assert body["url"] == f"http://testserver/api/labs/{alice_lab.pk}/"
    assert (body["name"], body["owner"], body["shared_with"]) == ("demo", "alice", [])
    assert body["labfile"]["networks"]["lan"]["gateway"] == "10.10.0.1"
    # In docs/labfile.md's order, on every database (PostgreSQL's jsonb would sort the keys).
    assert list(body["labfile"]) == ["labfile", "name", "description", "networks", "nodes"]
    assert list(body["labfile"]["networks"]["lan"]) == [
        "driver",
        "subnet",
        "gateway",
        "internal",
        "mtu",
    ]
    assert body["labfile"]["nodes"]["client"]["networks"]["lan"]["ipv4"] == "10.10.0.2"


def test_posting_a_labfile_creates_a_lab(
    api: Api, alice: User, class_a: Any, labfile_tree: Tree
) -> None:
    response = api(alice).post(
        "/api/labs/", {"labfile": labfile_tree("fresh"), "shared_with": ["class-a"]}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["shared_with"]) == ("fresh", ["class-a"])
    assert Lab.objects.get(pk=body["id"]).owner == alice


def test_an_invalid_labfile_answers_400_with_field_paths(
    api: Api, alice: User, labfile_tree: Tree
) -> None:
    tree = labfile_tree()
    tree["nodes"]["web"]["limits"]["memory"] = "12Q"
    tree["networks"]["lan"]["mode"] = "bridge"
    response = api(alice).post("/api/labs/", {"labfile": tree}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "The labfile is invalid."
    assert set(body["errors"]) == {"networks.lan.mode", "nodes.web.limits.memory"}
    assert '"12Q" is not a size' in body["errors"]["nodes.web.limits.memory"][0]


def test_a_labfile_that_is_not_an_object_is_a_400(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/", {"labfile": [1, 2]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["labfile"]


def test_a_missing_labfile_is_a_400(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/", {}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"labfile": ["This field is required."]}


def test_malformed_json_is_a_400_naming_the_problem(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


def test_a_privileged_node_from_a_user_is_a_400_naming_the_field(
    api: Api, alice: User, labfile_tree: Tree
) -> None:
    tree = labfile_tree()
    tree["nodes"]["web"]["privileged"] = True
    response = api(alice).post("/api/labs/", {"labfile": tree}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "nodes.web.privileged": ["only an admin may run a privileged node"]
    }


def test_an_admin_may_post_a_privileged_node(api: Api, root: User, labfile_tree: Tree) -> None:
    tree = labfile_tree()
    tree["nodes"]["web"]["privileged"] = True
    response = api(root).post("/api/labs/", {"labfile": tree}, format="json")
    assert response.status_code == 201
    assert response.json()["labfile"]["nodes"]["web"]["privileged"] is True


def test_a_duplicate_name_is_a_400_on_name(
    api: Api, alice: User, alice_lab: Lab, labfile_tree: Tree
) -> None:
    response = api(alice).post("/api/labs/", {"labfile": labfile_tree("demo")}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["You already have a lab named 'demo'."]}


def test_put_replaces_the_labfile(
    api: Api, alice: User, alice_lab: Lab, labfile_tree: Tree
) -> None:
    tree = labfile_tree("demo", description="replaced")
    del tree["nodes"]["web"]
    response = api(alice).put(f"/api/labs/{alice_lab.pk}/", {"labfile": tree}, format="json")
    assert response.status_code == 200
    assert response.json()["description"] == "replaced"
    assert list(response.json()["labfile"]["nodes"]) == ["client"]


def test_patch_changes_only_what_it_names(
    api: Api, alice: User, alice_lab: Lab, class_a: Any
) -> None:
    response = api(alice).patch(
        f"/api/labs/{alice_lab.pk}/",
        {"description": "patched", "shared_with": ["class-a"]},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["description"], body["shared_with"]) == ("patched", ["class-a"])
    assert body["labfile"]["description"] == "patched"
    assert list(body["labfile"]["nodes"]) == ["client", "web"]


def test_patch_with_an_unknown_group_is_a_400(api: Api, alice: User, alice_lab: Lab) -> None:
    response = api(alice).patch(
        f"/api/labs/{alice_lab.pk}/", {"shared_with": ["ghosts"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"shared_with": ["No such group: 'ghosts'."]}


def test_delete_removes_the_lab(api: Api, alice: User, alice_lab: Lab) -> None:
    assert api(alice).delete(f"/api/labs/{alice_lab.pk}/").status_code == 204
    assert not Lab.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_users_lab_is_a_404(
    api: Api, alice_lab: Lab, charlie: User, method: str, labfile_tree: Tree
) -> None:
    response = getattr(api(charlie), method)(
        f"/api/labs/{alice_lab.pk}/", {"labfile": labfile_tree()}, format="json"
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "errors": {}}
    assert Lab.objects.filter(pk=alice_lab.pk, description="Two nodes on one bridge").exists()


@pytest.mark.parametrize("suffix", ["", "export", "plan"])
def test_a_group_member_may_read_a_shared_lab(
    api: Api, shared_lab: Lab, bob: User, suffix: str
) -> None:
    response = api(bob).get(f"/api/labs/{shared_lab.pk}/{suffix}")
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_group_member_may_not_change_a_shared_lab(
    api: Api, shared_lab: Lab, bob: User, method: str, labfile_tree: Tree
) -> None:
    response = getattr(api(bob), method)(
        f"/api/labs/{shared_lab.pk}/", {"labfile": labfile_tree("shared")}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "This lab is shared with you to read; only its owner may change it."
    )


def test_an_anonymous_client_is_refused(api: Api, alice_lab: Lab) -> None:
    response = api(None).get("/api/labs/")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "errors": {},
    }


def test_token_authentication_works(alice: User, alice_lab: Lab) -> None:
    token = Token.objects.create(user=alice)
    client = APIClient()
    response = client.get("/api/labs/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert response.json()["count"] == 1
    assert client.get("/api/labs/", HTTP_AUTHORIZATION="Token wrong").status_code == 401


def test_a_body_over_one_mebibyte_is_a_413(api: Api, alice: User) -> None:
    body = json.dumps({"labfile": {"description": "x" * (1024 * 1024)}})
    response = api(alice).post("/api/labs/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "The request body is larger than the limit of 1048576 bytes (1 MiB)."
    )


def test_import_takes_yaml(api: Api, root: User, campus_tree: dict) -> None:
    text = yaml.safe_dump(campus_tree)  # with a host network: an admin's lab
    response = api(root).post("/api/labs/import", text, content_type="application/yaml")
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "campus"
    assert response.json()["labfile"]["networks"]["backbone"]["vni"] == 4242


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_import_takes_json_and_plain_text(
    api: Api, alice: User, labfile_tree: Tree, content_type: str
) -> None:
    response = api(alice).post(
        "/api/labs/import/", json.dumps(labfile_tree("fromjson")), content_type=content_type
    )
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "fromjson"


def test_import_of_malformed_yaml_names_the_problem(api: Api, alice: User) -> None:
    response = api(alice).post(
        "/api/labs/import", "name: [unclosed\n", content_type="application/yaml"
    )
    assert response.status_code == 400
    [message] = response.json()["errors"]["labfile"]
    assert "YAML" in message


def test_import_of_an_empty_body_is_a_400(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/import", "", content_type="application/yaml")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["labfile"]


@pytest.mark.parametrize(
    ("query", "content_type", "filename"),
    [
        ("", "application/yaml; charset=utf-8", "demo.yaml"),
        ("?format=yaml", "application/yaml; charset=utf-8", "demo.yaml"),
        ("?format=json", "application/json", "demo.json"),
    ],
)
def test_export_downloads_the_labfile(
    api: Api, alice: User, alice_lab: Lab, query: str, content_type: str, filename: str
) -> None:
    response = api(alice).get(f"/api/labs/{alice_lab.pk}/export{query}")
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    text = response.content.decode()
    document = json.loads(text) if filename.endswith("json") else yaml.safe_load(text)
    assert document["name"] == "demo"
    assert document["nodes"]["web"]["limits"] == {"memory": "256M"}


def test_export_in_an_unknown_format_is_a_400(api: Api, alice: User, alice_lab: Lab) -> None:
    response = api(alice).get(f"/api/labs/{alice_lab.pk}/export?format=xml")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "format": ["'xml' is not a format; use yaml, json, containerlab, compose."]
    }


def test_plan_gives_the_plan_and_its_shell_commands(api: Api, alice: User, alice_lab: Lab) -> None:
    response = api(alice).get(f"/api/labs/{alice_lab.pk}/plan")
    assert response.status_code == 200
    body = response.json()
    assert body["plan"]["lab"] == "demo"
    assert body["plan"]["deployment"] == "lm1"
    assert any(line.startswith("ip netns add lm1-n0") for line in body["commands"])


def test_the_list_is_paginated(api: Api, alice: User, labfile_tree: Tree) -> None:
    for index in range(3):
        api(alice).post("/api/labs/", {"labfile": labfile_tree(f"lab{index}")}, format="json")
    body = api(alice).get("/api/labs/?page_size=2").json()
    assert body["count"] == 3
