"""Bringing a lab from another tool in a real browser: a containerlab topology uploaded on
the new-lab page becomes a lab, with what the import changed told on the lab's page, and
a compose file that holds what labmgr cannot make is refused on the page by the file's
own fields, the pasted text kept, nothing made."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

Shot = Callable[[Page, str], Path]
Login = Callable[[str], Page]

# A topology of the interop corpus: a node in another's namespace, labels and binds noted.
TOPOLOGY = Path(__file__).parents[1] / "fixtures" / "interop" / "pod-and-modes.clab.yml"

COMPOSE = """\
name: built-here
services:
  app:
    build: ./app
  cache:
    image: redis:7
    networks: [shared]
networks:
  shared: {external: true}
"""


def open_import(page: Page) -> None:
    page.goto("/labs/new/")
    page.get_by_text("Import a lab").click()


def test_a_containerlab_topology_uploaded_becomes_a_lab_with_its_notes(
    login: Login, shot: Shot
) -> None:
    page = login("carol")
    open_import(page)
    page.get_by_label("Upload a file").set_input_files(TOPOLOGY)
    page.get_by_role("button", name="Import").click()

    page.wait_for_url(re.compile(r"/labs/\d+/$"))
    expect(page.get_by_text("Imported the lab 'pod-and-modes'.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Import: topology\.nodes\.app\.labels: "))).to_be_visible()
    expect(page.locator("#plan-commands")).to_contain_text("ip link add")
    shot(page, "imported")


def test_a_compose_file_labmgr_cannot_make_is_refused_by_its_own_fields(
    login: Login, shot: Shot
) -> None:
    page = login("carol")
    open_import(page)
    page.get_by_label("Format").select_option("compose")
    page.get_by_label("or paste it").fill(COMPOSE)
    page.get_by_role("button", name="Import").click()

    errors = page.locator("#import-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("services.app.build")
    expect(errors).to_contain_text("networks.shared.external")
    expect(page.get_by_text("The file cannot be imported: nothing was made.")).to_be_visible()
    expect(page.get_by_label("or paste it")).to_have_value(COMPOSE)
    shot(page, "refused")

    page.goto("/")
    expect(page.locator("#labs")).not_to_contain_text("built-here")
