"""The new-lab page's import takes a containerlab topology and a compose file as well as
a labfile: converted to a labfile, what changed told as messages, what has no labfile form
refused on the page by the file's own fields with nothing made, and a converted lab with
problems kept as an editable labfile draft."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from labmgr.labs.models import Lab
from labmgr.web.models import LabDraft

TOPOLOGY = """\
name: pair
topology:
  nodes:
    r1: {kind: linux, image: alpine:3.20, labels: {role: edge}}
    r2: {kind: linux, image: alpine:3.20}
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
"""

COMPOSE = """\
name: shop
services:
  web:
    image: nginx:1.27
    networks: [front]
    mem_limit: 256m
  db:
    image: postgres:16
    networks: [front]
networks:
  front:
    ipam: {config: [{subnet: 10.61.0.0/24}]}
"""


def messages_of(response: object) -> list[str]:
    return [str(m) for m in response.context["messages"]]  # type: ignore[attr-defined]


def test_a_containerlab_topology_becomes_a_lab_with_its_notes(client: Client, alice: User) -> None:
    client.force_login(alice)
    upload = SimpleUploadedFile("pair.clab.yml", TOPOLOGY.encode())
    response = client.post("/labs/new/", {"import": "1", "import-file": upload}, follow=True)

    lab = Lab.objects.get(owner=alice, name="pair")
    assert response.redirect_chain[-1][0] == f"/labs/{lab.pk}/"
    shown = messages_of(response)
    assert "Imported the lab 'pair'." in shown
    assert any(m.startswith("Import: topology.nodes.r1.labels: ") for m in shown)
    assert sorted(lab.nodes.values_list("name", flat=True)) == ["r1", "r2"]
    assert lab.links.count() == 1


def test_a_pasted_compose_file_chosen_by_format_becomes_a_lab(client: Client, alice: User) -> None:
    client.force_login(alice)
    data = {"import": "1", "import-text": COMPOSE, "import-source": "compose"}
    response = client.post("/labs/new/", data, follow=True)

    lab = Lab.objects.get(owner=alice, name="shop")
    assert response.redirect_chain[-1][0] == f"/labs/{lab.pk}/"
    assert sorted(lab.nodes.values_list("name", flat=True)) == ["db", "web"]
    assert lab.networks.get(name="front").subnet == "10.61.0.0/24"


def test_a_file_with_no_labfile_form_is_refused_by_its_own_paths_and_makes_nothing(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    text = TOPOLOGY.replace("{kind: linux, image: alpine:3.20}", "{kind: nokia_srlinux}")
    text = text.replace("r1: {kind: linux", "r1: {kind: ceos")
    response = client.post("/labs/new/", {"import": "1", "import-text": text})

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="import-errors" role="alert"' in page
    assert "<code>topology.nodes.r1.kind</code>" in page
    assert "<code>topology.nodes.r2.kind</code>" in page
    assert "The file cannot be imported: nothing was made." in messages_of(response)
    assert 'name="import-text"' in page and "nokia_srlinux" in page  # the text is kept
    assert not Lab.objects.exists() and not LabDraft.objects.exists()


def test_a_converted_lab_with_problems_is_an_editable_labfile_draft(
    client: Client, alice: User
) -> None:
    client.force_login(alice)
    # A plain user may not put a node on the host's network: the converted labfile says so.
    probe = "    r3: {kind: linux, image: alpine:3.20, network-mode: host}\n  links:"
    text = TOPOLOGY.replace("  links:", probe)
    response = client.post("/labs/new/", {"import": "1", "import-text": text}, follow=True)

    draft = LabDraft.objects.get(owner=alice)
    assert response.redirect_chain[-1][0] == f"/drafts/{draft.pk}/"
    assert draft.text.startswith("labfile:") and "topology:" not in draft.text
    assert list(draft.errors) == ["networks.host.driver"] and not Lab.objects.exists()


def test_a_labfile_chosen_as_compose_is_refused_not_guessed(client: Client, alice: User) -> None:
    client.force_login(alice)
    labfile = "labfile: 1\nname: plain\nnodes: {a: {}}\n"
    data = {"import": "1", "import-text": labfile, "import-source": "compose"}
    response = client.post("/labs/new/", data)

    assert response.status_code == 200
    assert 'id="import-errors"' in response.content.decode()
    assert not Lab.objects.exists() and not LabDraft.objects.exists()
