"""A student's first session in a real browser: log in, find the empty dashboard, copy an
example, break and fix it in the editor, look at its topology and its plan."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

Shot = Callable[[Page, str], Path]
Login = Callable[[str], Page]


def copy_example(page: Page, name: str) -> str:
    """Copies an example from the gallery; returns the new lab's page URL."""
    page.goto("/examples/")
    page.get_by_role("button", name=f"Copy {name} into my labs").click()
    page.wait_for_url(re.compile(r"/labs/\d+/$"))
    return page.url


def test_a_new_user_sees_an_empty_dashboard_that_explains_itself(login: Login, shot: Shot) -> None:
    page = login("dave")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text("You have no labs yet.")).to_be_visible()
    expect(page.get_by_text("No host has registered yet.")).to_be_visible()
    expect(page.get_by_role("link", name="copy an example")).to_be_visible()
    shot(page, "dashboard")


def test_a_wrong_password_is_told_in_words(page: Page, live_server_url: str, shot: Shot) -> None:
    page.goto("/login/")
    page.get_by_label("User name").fill("dave")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username")
    shot(page, "login")


def test_an_example_copied_from_the_gallery_becomes_my_lab(login: Login, shot: Shot) -> None:
    page = login("alice")
    page.goto("/examples/")
    expect(page.get_by_role("heading", name="two-nodes")).to_be_visible()
    shot(page, "gallery")
    copy_example(page, "two-nodes")
    expect(page.get_by_text("The example is now your lab 'two-nodes'.")).to_be_visible()
    expect(page.locator("#lab-status")).to_have_text("Not deployed")
    # The plan, for learning: the equivalent commands of what a deploy builds.
    expect(page.locator("#plan-commands")).to_contain_text("ip link add")
    expect(page.locator("#stream-state")).to_have_text("live")
    shot(page, "lab")
    page.get_by_role("link", name="Dashboard", exact=True).first.click()
    expect(page.locator("#labs")).to_contain_text("two-nodes")
    expect(page.locator("#labs")).to_contain_text("Not deployed")


def test_the_editor_shows_an_error_next_to_its_field_and_keeps_a_draft(
    login: Login, shot: Shot
) -> None:
    page = login("carol")
    lab_url = copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    node = page.locator("fieldset", has=page.get_by_text("Node alice", exact=True))
    memory = node.get_by_label("Memory")
    memory.fill("12Q")
    error = node.locator(".field-error")
    expect(error).to_contain_text('"12Q" is not a size')
    expect(memory).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#validity")).to_have_text("1 problem")
    # The form wrote the change into the YAML view as well.
    expect(page.locator("#id_text")).to_have_value(re.compile(r"memory: 12Q"))
    shot(page, "error")

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as a draft")).to_be_visible()
    expect(page.get_by_text("You are editing a draft")).to_be_visible()
    expect(page.locator("#yaml-errors")).to_contain_text("nodes.alice.limits.memory")
    shot(page, "draft")

    node = page.locator("fieldset", has=page.get_by_text("Node alice", exact=True))
    node.get_by_label("Memory").fill("256M")
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(lab_url)
    expect(page.get_by_text("Saved the lab 'two-nodes'.")).to_be_visible()
    expect(page.locator("#plan-commands")).to_contain_text("memory.max")


def test_a_network_shows_only_its_drivers_options(login: Login, shot: Shot) -> None:
    page = login("erin")
    page.goto("/labs/new/")
    network = page.locator("fieldset", has=page.get_by_text("Network lan", exact=True))
    expect(network.get_by_label("Gateway", exact=True)).to_be_visible()
    expect(network.get_by_label("IPv6 gateway")).to_be_visible()
    network.get_by_label("Driver").select_option("macvlan")
    network = page.locator("fieldset", has=page.get_by_text("Network lan", exact=True))
    expect(network.get_by_label("Mode")).to_be_visible()
    expect(network.get_by_label("Gateway", exact=True)).to_have_count(0)
    expect(network.get_by_label("IPv6 gateway")).to_have_count(0)
    expect(network.get_by_label("Internal: no way out of the lab")).to_have_count(0)
    # A macvlan needs a parent: the validator says so next to the network.
    expect(page.locator("#yaml-errors")).to_contain_text("networks.lan")
    shot(page, "macvlan")


def test_the_topology_draws_the_lab_and_tells_about_a_node(login: Login, shot: Shot) -> None:
    page = login("bob")
    copy_example(page, "two-bridges")
    page.get_by_role("link", name="Topology").click()
    page.wait_for_function("window.labTopology && window.labTopology.nodes().length > 0")
    counts = page.evaluate(
        "[labTopology.nodes('.lab-node').length, labTopology.nodes('.network').length]"
    )
    assert counts[0] >= 2 and counts[1] == 2
    page.locator("#topology-list").get_by_role("button").last.click()
    expect(page.locator("#details h3")).to_contain_text("Node")
    expect(page.locator("#details")).to_contain_text("stopped")
    shot(page, "topology")


def test_deploying_without_a_host_says_why_in_a_sentence(login: Login, shot: Shot) -> None:
    page = login("alice")
    copy_example(page, "none-network")
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_role("dialog")).to_contain_text("Deploy this lab?")
    page.get_by_role("dialog").get_by_role("button", name="Deploy").click()
    expect(page.locator("#action-error")).to_have_text("No host is online to deploy on.")
    shot(page, "refused")


def test_another_user_cannot_open_my_lab(login: Login, page: Page, shot: Shot) -> None:
    login("alice")
    lab_url = copy_example(page, "none-network")
    page.get_by_role("button", name="Log out").click()
    login("dave")
    response = page.goto(lab_url)
    assert response is not None and response.status == 404
    expect(page.get_by_text("There is nothing at this address")).to_be_visible()
    response = page.goto(lab_url + "terminals/")
    assert response is not None and response.status == 404
    shot(page, "not-found")
