"""Volumes and mounts made in the editor of a real browser: a volume added, renamed and
mounted by two nodes (one read-only) writes labfile 2's `volumes` and `mounts`; a path
the node cannot take and a host path a user may not mount are each shown by their field;
removing a volume takes its mounts with it; and the lab saves with its volume."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.test_labs import copy_example
from tests.browser.test_vlans_editor import fieldset

Shot = Callable[[Page, str], Path]
Login = Callable[[str], Page]


def test_nodes_share_a_volume_made_in_the_editor(login: Login, shot: Shot) -> None:
    page = login("alice")
    lab_url = copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    validity = page.locator("#validity")
    expect(validity).to_have_text("✓ Valid labfile")
    text = page.locator("#id_text")
    expect(fieldset(page, "Node alice").get_by_text("Add a volume of the lab")).to_be_visible()

    page.get_by_role("button", name="+ Add a volume").click()
    expect(text).to_have_value(re.compile(r"^labfile: 2$", re.M))
    expect(text).to_have_value(re.compile(r"volumes:\n  vol1:\n    size: 64M"))
    volume = fieldset(page, "Volume vol1")
    expect(volume.get_by_text("No node mounts it yet")).to_be_visible()
    volume.get_by_label("Name").fill("shared")
    volume.get_by_label("Name").press("Tab")
    expect(text).to_have_value(re.compile(r"volumes:\n  shared:"))

    fieldset(page, "Node alice").get_by_role("button", name="+ Add a mount to alice").click()
    fieldset(page, "Node bob").get_by_role("button", name="+ Add a mount to bob").click()
    alice = fieldset(page, "Node alice")
    expect(alice.get_by_label("Source of mount 1")).to_have_value("shared")
    alice.get_by_label("Path in alice of mount 1").fill("/srv/shared")
    alice.get_by_label("Mount 1 read-only").check()
    expect(text).to_have_value(
        re.compile(
            r"alice:\n(    .*\n)*    mounts:\n      - volume: shared\n        path: /srv/shared\n"
            r"        readonly: true"
        )
    )
    expect(text).to_have_value(
        re.compile(r"bob:\n(    .*\n)*      - volume: shared\n        path: /data")
    )
    expect(validity).to_have_text("✓ Valid labfile")
    expect(fieldset(page, "Volume shared").get_by_text("Mounted by alice, bob.")).to_be_visible()
    shot(page, "shared")

    # A path the node cannot take is shown by its field.
    path = alice.get_by_label("Path in alice of mount 1")
    path.fill("/proc/x")
    expect(path).to_have_attribute("aria-invalid", "true")
    expect(validity).to_have_text("1 problem")
    path.fill("/srv/shared")
    expect(validity).to_have_text("✓ Valid labfile")

    # A host path is an admin's: a user sees why by the host path's field.
    bob = fieldset(page, "Node bob")
    bob.get_by_label("Source of mount 1").focus()
    bob.get_by_label("Source of mount 1").select_option(label="a path of the host (admins only)")
    host = fieldset(page, "Node bob").get_by_label("Host path of mount 1")
    host.fill("/etc")
    expect(host).to_have_attribute("aria-invalid", "true")
    expect(fieldset(page, "Node bob").locator(".field-error")).to_contain_text(
        "only an admin may mount a path of the host (/etc)"
    )
    shot(page, "host-path")
    fieldset(page, "Node bob").get_by_label("Source of mount 1").select_option("shared")
    expect(text).not_to_have_value(re.compile(r"host: /etc"))
    expect(validity).to_have_text("✓ Valid labfile")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url(lab_url)
    expect(page.locator("#plan-commands")).to_contain_text("/srv/shared")

    # Removing the volume takes its mounts with it.
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_role("button", name="Remove Volume shared").click()
    expect(text).not_to_have_value(re.compile(r"volume|mounts"))
    expect(validity).to_have_text("✓ Valid labfile")
