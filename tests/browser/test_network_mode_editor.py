"""A node that joins another's network namespace, made in the editor of a real browser:
the node's form offers the other nodes' namespaces, choosing one writes `network_mode`
(and labfile 2), says what it means, drops the networks and routes the node no longer has,
and the lab saves with one network namespace fewer."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.test_labs import copy_example
from tests.browser.test_vlans_editor import fieldset

Shot = Callable[[Page, str], Path]
Login = Callable[[str], Page]


def test_a_node_joins_anothers_network_namespace_in_the_editor(login: Login, shot: Shot) -> None:
    page = login("bob")
    lab_url = copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    text = page.locator("#id_text")
    bob = fieldset(page, "Node bob")

    # As a user's click on the picker does, the picker has the focus when the choice lands.
    bob.get_by_label("Network namespace").focus()
    bob.get_by_label("Network namespace").select_option("container:alice")
    expect(text).to_have_value(re.compile(r"^labfile: 2$", re.M))
    expect(text).to_have_value(re.compile(r"network_mode: container:alice"))
    bob = fieldset(page, "Node bob")
    expect(bob.get_by_text("bob has alice's interfaces, addresses and routes")).to_be_visible()
    expect(bob.get_by_label("Network namespace")).to_be_focused()
    # Its networks and routes went with the choice: it has none of its own.
    expect(bob.get_by_label("lan", exact=True)).to_have_count(0)
    expect(text).not_to_have_value(re.compile(r"bob:\n(    .*\n)*    routes:"))
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    shot(page, "joins")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url(lab_url)
    commands = page.locator("#plan-commands")
    expect(commands).to_contain_text("hostname bob")
    assert commands.inner_text().count("ip netns add ") == 1  # alice's, which bob joins
