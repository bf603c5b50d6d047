"""The API's JSON writes a lab's stored document into the response unparsed: what a client
reads is still exactly the document, whatever its text holds, in every form the API
answers (compact JSON, indented JSON, the browsable API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer
from rest_framework.test import APIClient

from labmgr.api import renderers
from labmgr.api.renderers import JSONRenderer, RawJSON
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create
from tests.unit.labmgr.conftest import small_labfile

Api = Callable[[User | None], APIClient]

# Text a JSON encoder must get right: non-ASCII, the two line separators JavaScript does
# not allow unescaped in strings, quotes, backslashes, control characters.
AWKWARD = 'Café ✓ 日本 \u2028 line \u2029 para "quoted" back\\slash \t tab \x01'


def marker(n: int) -> str:
    return f"{renderers._MARKER_PREFIX}{n}"


@pytest.fixture
def awkward_lab(alice: User) -> Lab:
    return lab_create(owner=alice, labfile_tree=small_labfile("awkward", description=AWKWARD))


def test_a_page_of_labs_holds_each_stored_document_exactly(
    api: Api, alice: User, awkward_lab: Lab, alice_lab: Lab
) -> None:
    response = api(alice).get("/api/labs/")
    labs = {lab["name"]: lab for lab in response.json()["results"]}
    assert labs["awkward"]["labfile"] == spec.lab_document(awkward_lab)
    assert labs["awkward"]["labfile"]["description"] == AWKWARD
    assert labs["demo"]["labfile"] == spec.lab_document(alice_lab)
    # Valid JavaScript too, as DRF writes it: the separators are escaped, never raw.
    assert "\u2028".encode() not in response.content
    assert "\u2029".encode() not in response.content
    assert b"\\u2028" in response.content
    assert "Café ✓ 日本".encode() in response.content  # UTF-8, not \\u escapes


def test_it_writes_what_django_rest_framework_would_have_written() -> None:
    document = {"name": AWKWARD, "nested": {"list": [1, 2.5, None, True]}}
    data = {"a": [RawJSON(json.dumps(document, ensure_ascii=False)), "plain"], "b": AWKWARD}
    decoded = {"a": [document, "plain"], "b": AWKWARD}
    ours = JSONRenderer().render(data)
    assert json.loads(ours) == decoded
    assert json.loads(ours) == json.loads(DRFJSONRenderer().render(decoded))


@pytest.mark.parametrize(
    "looks_like_a_marker",
    [
        pytest.param(lambda: marker(0), id="a whole marker"),
        pytest.param(lambda: marker(1), id="the next marker"),
        pytest.param(lambda: f'text"{marker(0)}', id="a marker after a quote"),
        pytest.param(lambda: f"{marker(0)}{marker(1)}", id="two markers"),
    ],
)
def test_a_string_that_looks_like_a_marker_stays_a_string(
    looks_like_a_marker: Callable[[], str],
) -> None:
    text = looks_like_a_marker()
    data = {"before": text, "doc": RawJSON('{"x": 1}'), "after": [text, RawJSON('{"y": [2]}')]}
    assert json.loads(JSONRenderer().render(data)) == {
        "before": text,
        "doc": {"x": 1},
        "after": [text, {"y": [2]}],
    }


def test_without_stored_documents_the_output_is_django_rest_frameworks() -> None:
    data = {"name": AWKWARD, "n": [1, 2]}
    assert JSONRenderer().render(data) == DRFJSONRenderer().render(data)


def test_indented_json_indents_the_document_too(api: Api, alice: User, awkward_lab: Lab) -> None:
    response = api(alice).get(
        f"/api/labs/{awkward_lab.pk}/", HTTP_ACCEPT="application/json; indent=4"
    )
    assert response.json()["labfile"] == spec.lab_document(awkward_lab)
    assert b'\n            "lan": {\n' in response.content  # networks > lan, four spaces a level


def test_the_browsable_api_shows_the_document(api: Api, alice: User, awkward_lab: Lab) -> None:
    response = api(alice).get(f"/api/labs/{awkward_lab.pk}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    page = response.content.decode()
    assert "\n        &quot;networks&quot;: {\n" in page  # the document, indented, not a marker
    assert "&quot;networks&quot;: {&quot;" not in page  # nowhere on one line
    assert renderers._MARKER_PREFIX not in page


def test_a_list_item_is_the_labs_own_representation(
    api: Api, alice: User, bob: User, class_a: Group, shared_lab: Lab
) -> None:
    """The list reads less than one lab's page (the owner's name, the groups' names), and
    says the same."""
    Group.objects.create(name="a-first").shared_labs.add(shared_lab)
    for user in (alice, bob):
        client = api(user)
        (item,) = client.get("/api/labs/").json()["results"]
        assert item == client.get(f"/api/labs/{shared_lab.pk}/").json()
        assert (item["owner"], item["shared_with"]) == ("alice", ["a-first", "class-a"])


def test_a_page_costs_the_same_few_queries_however_many_labs_it_holds(
    api: Api, alice: User, class_a: Group, django_assert_max_num_queries: Any
) -> None:
    for i in range(30):
        lab_create(owner=alice, labfile_tree=small_labfile(f"lab-{i}"), shared_with=["class-a"])
    with django_assert_max_num_queries(3):  # count, the page, the groups' names
        body = api(alice).get("/api/labs/").json()
    assert len(body["results"]) == 30
    assert {tuple(lab["shared_with"]) for lab in body["results"]} == {("class-a",)}
