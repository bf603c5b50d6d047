"""A labfile or JSON body nested 500 or 100,000 levels deep is refused with a sentence
naming the problem, through every way in: the REST import (YAML and JSON), the JSON API's
create and update, other JSON endpoints, and the web editor's validate and save. Never a
500, and nothing is created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from labmgr.labs.models import Lab
from labmgr.web.models import LabDraft

DEPTHS = [500, 100_000]
LABFILE_TOO_DEEP = "the document is nested deeper than 32 levels"
BODY_TOO_DEEP = "The request body is nested deeper than 64 levels."


def deep_yaml(depth: int) -> str:
    """A labfile whose node's environment variable is `depth` nested lists."""
    return (
        "labfile: 1\nname: deep\nnodes:\n  web:\n    environment:\n      A: "
        + "[" * depth
        + "]" * depth
        + "\n"
    )


def deep_json_labfile(depth: int) -> str:
    return (
        '{"labfile": 1, "name": "deep", "nodes": {"web": {"environment": {"A": '
        + '{"a": ' * depth
        + "1"
        + "}" * depth
        + "}}}}"
    )


def token_client(user: User) -> APIClient:
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(
    ("content_type", "build"),
    [("application/yaml", deep_yaml), ("application/json", deep_json_labfile)],
    ids=["yaml", "json"],
)
def test_the_rest_import_refuses_a_deep_labfile(
    alice: User, content_type: str, build: object, depth: int
) -> None:
    assert callable(build)
    response = token_client(alice).post(
        "/api/labs/import", data=build(depth), content_type=content_type
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "The labfile is invalid."
    assert list(body["errors"]) == ["labfile"]
    assert body["errors"]["labfile"][0].startswith(LABFILE_TOO_DEEP)
    assert not Lab.objects.exists()


def _json_body(depth: int) -> str:
    return '{"labfile": ' + deep_json_labfile(depth) + "}"


@pytest.mark.django_db
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_the_json_api_refuses_a_deep_labfile_on_create_and_update(
    alice: User, alice_lab: Lab, method: str, depth: int
) -> None:
    url = "/api/labs/" if method == "post" else f"/api/labs/{alice_lab.pk}/"
    send = getattr(token_client(alice), method)
    response = send(url, data=_json_body(depth), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": BODY_TOO_DEEP, "errors": {}}
    assert list(Lab.objects.values_list("name", flat=True)) == ["demo"]
    alice_lab.refresh_from_db()
    assert alice_lab.nodes.count() == 2  # unchanged


@pytest.mark.django_db
def test_a_labfile_deeper_than_a_labfile_goes_but_within_the_body_bound_is_a_field_error(
    alice: User,
) -> None:
    response = token_client(alice).post(
        "/api/labs/", data=_json_body(40), content_type="application/json"
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["nodes.web.environment.A"]


@pytest.mark.django_db
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(
    ("method", "url"),
    [("post", "/api/reservations/"), ("post", "/api/token"), ("patch", "/api/hosts/{host}/")],
)
def test_other_json_endpoints_refuse_a_deep_body(
    root: User, online_host: Any, method: str, url: str, depth: int
) -> None:
    body = '{"note": ' + "[" * depth + "]" * depth + "}"
    send = getattr(token_client(root), method)
    response = send(url.format(host=online_host.pk), data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": BODY_TOO_DEEP, "errors": {}}


@pytest.mark.django_db
@pytest.mark.parametrize("depth", DEPTHS)
def test_the_editors_live_check_names_the_depth(client: Client, alice: User, depth: int) -> None:
    client.force_login(alice)
    response = client.post(
        "/labs/validate",
        data=json.dumps({"text": deep_yaml(depth)}),
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert body["errors"]["labfile"][0].startswith(LABFILE_TOO_DEEP)


@pytest.mark.django_db
@pytest.mark.parametrize("depth", DEPTHS)
def test_the_editors_live_check_refuses_a_deep_request(
    client: Client, alice: User, depth: int
) -> None:
    client.force_login(alice)
    body = '{"text": "x", "more": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/labs/validate", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": BODY_TOO_DEEP}


@pytest.mark.django_db
@pytest.mark.parametrize("depth", DEPTHS)
def test_saving_a_deep_labfile_in_the_editor_keeps_a_draft_that_says_why(
    client: Client, alice: User, depth: int
) -> None:
    client.force_login(alice)
    response = client.post("/labs/new/", {"text": deep_yaml(depth)}, follow=True)
    assert response.status_code == 200
    assert LABFILE_TOO_DEEP in response.content.decode()
    assert not Lab.objects.exists()
    draft = LabDraft.objects.get(owner=alice)
    assert draft.errors["labfile"][0].startswith(LABFILE_TOO_DEEP)
