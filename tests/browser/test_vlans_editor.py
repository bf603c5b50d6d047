"""IPv6 and VLANs in a real browser: the editor offers a network's IPv6 subnet and
gateway, a bridge's VLAN filtering, a vlan network's id and an attachment's IPv6 address, access
VLAN and trunk only where the driver takes them, the fields a choice brings appear at
once with the focus kept, bad inputs are named on their fields and kept in the draft,
and the topology gives each port its IPv6 address and VLANs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.browser.test_labs import copy_example
from tests.browser.test_links_editor import field_error

Shot = Callable[[Page, str], Path]
Login = Callable[[str], Page]


def fieldset(page: Page, legend: str) -> Locator:
    return page.locator("fieldset", has=page.locator("legend", has_text=re.compile(f"^{legend}$")))


def test_a_dual_stack_vlan_lab_made_in_the_editor_is_drawn_with_its_ports(
    login: Login, shot: Shot
) -> None:
    page = login("erin")
    lab_url = copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    text = page.locator("#id_text")
    lan = fieldset(page, "Network lan")
    alice = fieldset(page, "Node alice")
    bob = fieldset(page, "Node bob")
    # An untagged port is the bridge's until it filters VLANs.
    expect(alice.get_by_label("IPv6 on lan")).to_be_visible()
    expect(alice.get_by_label("Access VLAN on lan")).to_have_count(0)

    lan.get_by_label("IPv6 subnet").fill("fd00:10::/64")
    expect(text).to_have_value(re.compile(r"^labfile: 2$", re.M))
    expect(text).to_have_value(re.compile(r"subnet6: fd00:10::/64"))
    # A gateway6 outside the subnet6 is named on its field; inside, it is kept.
    lan.get_by_label("IPv6 gateway").fill("fd00:11::1")
    expect(field_error(lan, "IPv6 gateway")).to_contain_text("is not in the subnet fd00:10::/64")
    lan.get_by_label("IPv6 gateway").fill("fd00:10::1")
    expect(text).to_have_value(re.compile(r"gateway6: fd00:10::1"))
    # Ticking VLAN filtering brings each attachment's VLAN fields at once, the focus kept.
    filtering = lan.get_by_label("VLAN filtering")
    filtering.check()
    expect(alice.get_by_label("Access VLAN on lan")).to_be_visible()
    expect(bob.get_by_label("Trunk VLANs on lan")).to_be_visible()
    expect(lan.get_by_label("VLAN filtering")).to_be_focused()
    expect(text).to_have_value(re.compile(r"vlan_filtering: true"))

    alice.get_by_label("IPv6 on lan").fill("fd00:10::11")
    alice.get_by_label("Access VLAN on lan").fill("10")
    bob.get_by_label("Trunk VLANs on lan").fill("10, 20")
    expect(text).to_have_value(re.compile(r"ipv6: fd00:10::11\n\s+vlan: 10\n"))
    expect(text).to_have_value(re.compile(r"vlans:\n\s+- 10\n\s+- 20\n"))
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    shot(page, "editor")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url(lab_url)
    expect(page.get_by_text("Saved the lab 'two-nodes")).to_be_visible()

    page.get_by_role("link", name="Topology").click()
    page.wait_for_function("window.labTopology && labTopology.edges().length === 2")
    labels = page.evaluate(
        "Object.fromEntries(labTopology.edges().map((e) => [e.data('node'), e.data('label')]))"
    )
    assert labels == {
        "alice": "eth0 10.10.0.2\nfd00:10::11\nvlan 10",
        "bob": "eth0 10.10.0.3\nfd00:10::2\ntrunk 10,20",
    }
    words = page.locator("#topology-list")
    expect(words).to_contain_text("lan: bridge 10.10.0.0/24 fd00:10::/64, VLAN filtering")
    expect(words).to_contain_text("alice (stopped): lan 10.10.0.2 fd00:10::11 vlan 10")
    words.get_by_role("button", name="bob", exact=True).click()
    details = page.locator("#details")
    expect(details.locator("h3")).to_have_text("Node bob")
    expect(details).to_contain_text("10.10.0.3 fd00:10::2 trunk 10,20")
    words.get_by_role("button", name="lan", exact=True).click()
    expect(details).to_contain_text("fd00:10::/64")
    expect(details).to_contain_text("fd00:10::1 (held by the host, NAT66 unless internal)")
    expect(details).to_contain_text("VLAN filtering")
    shot(page, "topology")


def test_a_vlan_network_and_bad_vlan_inputs_are_named_on_their_fields(
    login: Login, shot: Shot
) -> None:
    page = login("erin")
    copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    text = page.locator("#id_text")

    # Choosing the vlan driver brings its id and parent at once, the picker keeping focus.
    page.get_by_role("button", name="+ Add a network").click()
    net = fieldset(page, "Network net1")
    expect(net.get_by_label("VLAN id")).to_have_count(0)
    # As a user's click on the picker does, the picker has the focus when the choice lands.
    net.get_by_label("Driver").focus()
    net.get_by_label("Driver").select_option("vlan")
    expect(net.get_by_label("VLAN id")).to_be_visible()
    expect(net.get_by_label("Parent")).to_be_visible()
    expect(net.get_by_label("VLAN filtering")).to_have_count(0)
    expect(net.get_by_label("Driver")).to_be_focused()
    expect(text).to_have_value(re.compile(r"^labfile: 2$", re.M))
    net.get_by_label("Parent").select_option("lan")
    net.get_by_label("VLAN id").fill("5000")
    expect(field_error(net, "VLAN id")).to_contain_text("between 1 and 4094")

    # Ticking an attachment brings its fields at once: a vlan port has no VLANs of its own.
    alice = fieldset(page, "Node alice")
    alice.get_by_label("net1", exact=True).check()
    expect(alice.get_by_label("Address on net1")).to_be_visible()
    expect(alice.get_by_label("IPv6 on net1")).to_be_visible()
    expect(alice.get_by_label("Access VLAN on net1")).to_have_count(0)
    expect(alice.get_by_label("net1", exact=True)).to_be_focused()

    lan = fieldset(page, "Network lan")
    lan.get_by_label("VLAN filtering").check()
    bob = fieldset(page, "Node bob")
    bob.get_by_label("Access VLAN on lan").fill("0")
    bob.get_by_label("Trunk VLANs on lan").fill("10, x")
    bob.get_by_label("IPv6 on lan").fill("fd00:99::1")
    expect(field_error(bob, "Access VLAN on lan")).to_contain_text("between 1 and 4094")
    expect(field_error(bob, "Trunk VLANs on lan")).to_contain_text('"x" is not a whole number')
    expect(field_error(bob, "IPv6 on lan")).to_be_visible()
    expect(bob.get_by_label("Trunk VLANs on lan")).to_have_attribute("aria-invalid", "true")
    shot(page, "errors")

    # Saving keeps all of it as a draft, with every problem named by its path.
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as a draft")).to_be_visible()
    errors = page.locator("#yaml-errors")
    expect(errors).to_contain_text("networks.net1.id")
    expect(errors).to_contain_text("nodes.bob.networks.lan.vlan")
    expect(errors).to_contain_text("nodes.bob.networks.lan.vlans.1")
    expect(errors).to_contain_text("nodes.bob.networks.lan.ipv6")
    bob = fieldset(page, "Node bob")
    expect(bob.get_by_label("Trunk VLANs on lan")).to_have_value("10, x")
    expect(bob.get_by_label("Access VLAN on lan")).to_have_value("0")
    expect(fieldset(page, "Network net1").get_by_label("VLAN id")).to_have_value("5000")

    # Fixed, it is valid.
    fieldset(page, "Network net1").get_by_label("VLAN id").fill("100")
    bob.get_by_label("Access VLAN on lan").fill("30")
    bob.get_by_label("Trunk VLANs on lan").fill("10, 20")
    bob.get_by_label("IPv6 on lan").fill("")
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
