"""Bringing a lab from another tool in a real browser: a containerlab topology uploaded on
the new-lab page becomes a lab, with what the import changed told on the lab's page; the
same topology uploaded by a user who may not bind a host path is kept as a draft to fix,
the bind named; and a compose file that holds what labmgr cannot make is refused on the
page by the file's own fields, the pasted text kept, nothing made."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD

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


def upload_topology(page: Page) -> None:
    open_import(page)
    page.get_by_label("Upload a file").set_input_files(TOPOLOGY)
    page.get_by_role("button", name="Import").click()


def test_a_containerlab_topology_uploaded_by_an_admin_becomes_a_lab_with_its_notes(
    login: Login, shot: Shot, manage_shell: Callable[[str], None]
) -> None:
    manage_shell(
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('ines', password={PASSWORD!r}, is_staff=True, "
        "is_superuser=True)"
    )
    page = login("ines")
    upload_topology(page)

    page.wait_for_url(re.compile(r"/labs/\d+/$"))
    expect(page.get_by_text("Imported the lab 'pod-and-modes'.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Import: topology\.nodes\.app\.labels: "))).to_be_visible()
    expect(page.locator("#plan-commands")).to_contain_text("ip link add")
    shot(page, "imported")


def test_a_topology_binding_a_host_path_is_kept_as_a_draft_for_a_user_naming_the_bind(
    login: Login, shot: Shot
) -> None:
    page = login("carol")
    upload_topology(page)

    page.wait_for_url(re.compile(r"/drafts/\d+/"))
    expect(page.get_by_text("it is kept as a draft so you can fix them here")).to_be_visible()
    bind = re.compile(r"^Import: topology\.nodes\.data\.binds\.0: /srv/data is a path of the host")
    expect(page.get_by_text(bind)).to_be_visible()
    expect(page.locator("#yaml-errors")).to_contain_text("nodes.data.mounts.0.host")
    expect(page.locator("#yaml-errors")).to_contain_text("only an admin may mount a path")
    shot(page, "draft")

    page.goto("/")
    row = page.locator("#labs tr", has_text="pod-and-modes")
    expect(row).to_contain_text("Not created yet: 1 problem to fix.")


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
