"""The editor: live validation by field path, drafts for invalid work, import, examples."""

from __future__ import annotations

import json

from django.contrib.auth.models import User
from django.test import Client

from labmgr.labs.models import Lab
from labmgr.web.models import LabDraft

BAD_MEMORY = """labfile: 1
name: demo
networks:
  lan: {driver: bridge, subnet: 10.10.0.0/24}
nodes:
  web:
    limits: {memory: 12Q}
    networks: {lan: {}}
"""


def check(client: Client, text: str) -> dict[str, object]:
    response = client.post("/labs/validate", json.dumps({"text": text}), "application/json")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_validation_names_the_field_of_each_error(client: Client, alice: User) -> None:
    client.force_login(alice)
    body = check(client, BAD_MEMORY)
    assert body["valid"] is False
    assert body["errors"] == {
        "nodes.web.limits.memory": [
            '"12Q" is not a size (use a number of bytes with an optional K, M or G suffix, '
            "like 256M)"
        ]
    }


def test_validation_reports_yaml_syntax_errors_for_the_whole_file(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    errors = check(client, "nodes: [")["errors"]
    assert isinstance(errors, dict) and "YAML syntax error" in errors["labfile"][0]


def test_validation_refuses_admin_only_fields_to_a_student(client: Client, alice: User) -> None:
    client.force_login(alice)
    text = BAD_MEMORY.replace("limits: {memory: 12Q}", "privileged: true")
    errors = check(client, text)["errors"]
    assert isinstance(errors, dict) and "nodes.web.privileged" in errors


def test_validation_needs_a_login(client: Client) -> None:
    response = client.post("/labs/validate", "{}", "application/json")
    assert response.status_code == 302


def test_saving_an_invalid_lab_keeps_a_draft_and_the_lab_unchanged(
    client: Client, alice_lab: Lab
) -> None:
    client.force_login(alice_lab.owner)
    before = alice_lab.document
    page = client.post(f"/labs/{alice_lab.pk}/edit/", {"text": BAD_MEMORY}).content.decode()
    assert "Saved as a draft" in page
    assert "is not a size" in page
    draft = LabDraft.objects.get(lab=alice_lab)
    assert draft.text == BAD_MEMORY
    alice_lab.refresh_from_db()
    assert alice_lab.document == before
    # Reopening the editor shows the draft, not the lab.
    assert "12Q" in client.get(f"/labs/{alice_lab.pk}/edit/").content.decode()


def test_saving_a_valid_lab_replaces_it_and_drops_the_draft(client: Client, alice_lab: Lab) -> None:
    client.force_login(alice_lab.owner)
    client.post(f"/labs/{alice_lab.pk}/edit/", {"text": BAD_MEMORY})
    fixed = BAD_MEMORY.replace("12Q", "128M")
    response = client.post(f"/labs/{alice_lab.pk}/edit/", {"text": fixed})
    assert response.status_code == 302 and response["Location"] == f"/labs/{alice_lab.pk}/"
    assert not LabDraft.objects.filter(lab=alice_lab).exists()
    alice_lab.refresh_from_db()
    assert '"memory": "128M"' in alice_lab.document


def test_an_invalid_new_lab_becomes_a_draft_on_the_dashboard(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post("/labs/new/", {"text": BAD_MEMORY.replace("demo", "fresh")})
    draft = LabDraft.objects.get(owner=alice)
    assert response["Location"] == f"/drafts/{draft.pk}/"
    assert draft.name == "fresh" and draft.lab is None
    assert "Not created yet" in client.get("/").content.decode()


def test_importing_a_pasted_labfile_creates_the_lab(client: Client, alice: User) -> None:
    client.force_login(alice)
    text = BAD_MEMORY.replace("12Q", "64M")
    response = client.post("/labs/new/", {"import": "1", "import-text": text})
    lab = Lab.objects.get(owner=alice, name="demo")
    assert response["Location"] == f"/labs/{lab.pk}/"


def test_a_reader_may_not_edit_a_shared_lab(client: Client, shared_lab: Lab, bob: User) -> None:
    client.force_login(bob)
    response = client.get(f"/labs/{shared_lab.pk}/edit/")
    assert response.status_code == 403
    assert "only its owner may edit it" in response.content.decode()


def test_someone_elses_lab_is_not_found(client: Client, alice_lab: Lab, charlie: User) -> None:
    client.force_login(charlie)
    for page in ("", "edit/", "topology/", "terminals/"):
        assert client.get(f"/labs/{alice_lab.pk}/{page}").status_code == 404


def test_copying_an_example_twice_gives_two_labs(client: Client, alice: User) -> None:
    client.force_login(alice)
    assert "two-nodes" in client.get("/examples/").content.decode()
    client.post("/examples/two-nodes/copy")
    client.post("/examples/two-nodes/copy")
    names = sorted(Lab.objects.filter(owner=alice).values_list("name", flat=True))
    assert names == ["two-nodes", "two-nodes-2"]


def test_an_unknown_example_is_not_found(client: Client, alice: User) -> None:
    client.force_login(alice)
    assert client.post("/examples/nothing/copy").status_code == 404


ODD_VLANS = """labfile: 2
name: odd
networks:
  lan: {driver: bridge, subnet: 10.10.0.0/24, subnet6: 5, vlan_filtering: "yes"}
  v: {driver: vlan, parent: lan, id: "x", subnet: 10.20.0.0/24}
nodes:
  a: {networks: {lan: {vlan: [1], vlans: "10, 20", ipv6: {}}}}
"""


def test_odd_ipv6_and_vlan_values_are_named_by_path_and_kept_as_a_draft(
    client: Client, alice: User
) -> None:
    """What the YAML may hold that the form never writes (a trunk as one string, a list
    for an access VLAN) is refused by name, never a server error."""
    client.force_login(alice)
    errors = check(client, ODD_VLANS)["errors"]
    assert isinstance(errors, dict)
    assert {
        "networks.lan.subnet6",
        "networks.lan.vlan_filtering",
        "networks.v.id",
        "nodes.a.networks.lan.vlan",
        "nodes.a.networks.lan.vlans",
        "nodes.a.networks.lan.ipv6",
    } <= set(errors)
    response = client.post("/labs/new/", {"text": ODD_VLANS})
    assert response.status_code == 302
    assert LabDraft.objects.get(owner=alice, name="odd").errors == errors
