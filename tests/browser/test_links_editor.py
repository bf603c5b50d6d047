"""Point-to-point links in a real browser: added in the editor's form, drawn node to node
in the topology, their bad inputs named next to the field, and a running link's
interfaces in the live charts and the capture picker."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.test_labs import copy_example

Shot = Callable[[Page, str], Path]
Login = Callable[[str], Page]
Shell = Callable[[str], None]


def link_fieldset(page: Page, number: int) -> Locator:
    return page.locator("fieldset", has=page.locator("legend", has_text=f"Link {number}:"))


def field_error(scope: Locator, label: str) -> Locator:
    """The error shown inside the field box of the input labelled `label`."""
    return scope.locator(".field", has=scope.page.get_by_label(label, exact=True)).locator(
        ".field-error"
    )


def test_a_link_added_in_the_editor_is_drawn_node_to_node(login: Login, shot: Shot) -> None:
    page = login("erin")
    lab_url = copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    page.get_by_role("button", name="+ Add a link").click()
    link = link_fieldset(page, 1)
    expect(link.get_by_label("Node A")).to_have_value("alice")
    expect(link.get_by_label("Node B")).to_have_value("bob")
    expect(link.get_by_label("Interface A")).to_have_value("eth1")
    # A link is labfile 2's: the form said so in the YAML.
    expect(page.locator("#id_text")).to_have_value(re.compile(r"^labfile: 2$", re.M))
    link.get_by_label("IPv4 A").fill("10.0.12.1/30")
    link.get_by_label("IPv4 B").fill("10.0.12.2/30")
    link.get_by_label("MTU").fill("9000")
    link.get_by_label("Delay", exact=True).fill("10ms")
    text = page.locator("#id_text")
    expect(text).to_have_value(re.compile(r"- alice:eth1\n\s+- bob:eth1"))
    expect(text).to_have_value(re.compile(r"impairments:\n\s+delay: 10ms"))
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    shot(page, "editor")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url(lab_url)
    expect(page.get_by_text("Saved the lab 'two-nodes")).to_be_visible()
    expect(page.locator("#plan-commands")).to_contain_text("10.0.12.1/30")

    page.get_by_role("link", name="Topology").click()
    page.wait_for_function("window.labTopology && labTopology.edges('.peer-link').length === 1")
    edge = page.evaluate(
        "(() => { const e = labTopology.edges('.peer-link')[0];"
        " return [e.source().id(), e.target().id(), e.data('sourceLabel'),"
        " e.data('targetLabel'), e.data('label'),"
        " labTopology.edges().length - labTopology.edges('.peer-link').length]; })()"
    )
    assert edge == [
        "node:alice",
        "node:bob",
        "eth1\n10.0.12.1/30",
        "eth1\n10.0.12.2/30",
        "delay 10ms",
        2,  # the two node-network edges are still there
    ]
    words = page.locator("#topology-list")
    expect(words).to_contain_text("alice:eth1 - bob:eth1: 10.0.12.1/30 - 10.0.12.2/30")
    words.get_by_role("button", name="alice:eth1 - bob:eth1").click()
    expect(page.locator("#details h3")).to_have_text("Link alice:eth1 - bob:eth1")
    expect(page.locator("#details")).to_contain_text("delay 10ms")
    expect(page.locator("#details")).to_contain_text("9000")
    shot(page, "topology")


def test_bad_link_and_impairment_inputs_are_named_next_to_their_fields(
    login: Login, shot: Shot
) -> None:
    page = login("erin")
    copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_role("button", name="+ Add a link").click()
    link = link_fieldset(page, 1)
    link.get_by_label("IPv4 A").fill("10.0.12.1/30")
    link.get_by_label("IPv4 B").fill("10.0.99.2/30")
    expect(field_error(link, "IPv4 B")).to_contain_text("not in the subnet of the other end")
    expect(link.get_by_label("IPv4 B")).to_have_attribute("aria-invalid", "true")

    # One way only: what bob sends is delayed, and a bad value is named on its field.
    link.get_by_label("Impairments").select_option("each")
    link = link_fieldset(page, 1)
    link.get_by_label("Delay from B").fill("soon")
    expect(field_error(link, "Delay from B")).to_contain_text('"soon" is not a time')
    expect(page.locator("#id_text")).to_have_value(re.compile(r"bob:eth1:\n\s+delay: soon"))

    # An attachment's own impairments.
    node = page.locator("fieldset", has=page.get_by_text("Node alice", exact=True))
    node.get_by_text("Impairments of what alice sends on lan").click()
    node.get_by_label("Loss on lan").fill("120%")
    expect(field_error(node, "Loss on lan")).to_contain_text("between 0% and 100%")
    expect(page.locator("#validity")).to_have_text("3 problems")
    shot(page, "errors")

    # Saving keeps all of it as a draft, with every problem named by its path.
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as a draft")).to_be_visible()
    errors = page.locator("#yaml-errors")
    expect(errors).to_contain_text("links.0.ipv4")
    expect(errors).to_contain_text("links.0.impairments.bob:eth1.delay")
    expect(errors).to_contain_text("nodes.alice.networks.lan.impairments.loss")
    link = link_fieldset(page, 1)
    expect(link.get_by_label("IPv4 B")).to_have_value("10.0.99.2/30")
    expect(link.get_by_label("Delay from B")).to_have_value("soon")

    # Fixed, it saves; removing the link takes it out of the YAML.
    link.get_by_label("IPv4 B").fill("10.0.12.2/30")
    link.get_by_label("Delay from B").fill("5ms")
    node = page.locator("fieldset", has=page.get_by_text("Node alice", exact=True))
    node.get_by_label("Loss on lan").fill("1%")
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    page.get_by_role("button", name="Remove link 1").click()
    expect(page.locator("#id_text")).not_to_have_value(re.compile("links:"))
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")


def test_a_link_turned_into_a_dummy_a_host_or_a_network_link_takes_one_endpoint(
    login: Login, shot: Shot
) -> None:
    page = login("erin")
    lab_url = copy_example(page, "two-nodes")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_role("button", name="+ Add a link").click()
    link_fieldset(page, 1).get_by_label("Type").select_option("dummy")
    link = link_fieldset(page, 1)
    expect(link.locator("legend")).to_have_text("Link 1: alice:eth1 - dummy")
    expect(link.get_by_label("Node B")).to_have_count(0)
    expect(link.get_by_label("Delay", exact=True)).to_have_count(0)
    link.get_by_label("IPv4", exact=True).fill("10.255.0.1/32")
    text = page.locator("#id_text")
    dummy = r"- type: dummy\n\s+endpoints:\n\s+- alice:eth1\n\s+ipv4:"
    expect(text).to_have_value(re.compile(dummy))
    expect(text).not_to_have_value(re.compile(r"bob:eth1"))
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")

    # A host link is an admin's: erin is told so on the type, and sees its host-side keys.
    link.get_by_label("Type").select_option("host")
    link = link_fieldset(page, 1)
    expect(link.get_by_label("Name on the host")).to_be_visible()
    expect(field_error(link, "IPv4")).to_contain_text("leaves no room for the other end")
    link.get_by_label("IPv4", exact=True).fill("10.255.0.1/30")
    expect(field_error(link, "Type")).to_contain_text("only an admin may make a host link")
    shot(page, "host-link")

    # One more port on the lab's bridge: the network is picked from the lab's bridges.
    link.get_by_label("Type").select_option("network")
    link = link_fieldset(page, 1)
    expect(link.locator("legend")).to_have_text("Link 1: alice:eth1 - network lan")
    expect(link.get_by_label("Network")).to_have_value("lan")
    expect(field_error(link, "IPv4")).to_contain_text("is not in the subnet of lan, 10.10.0.0/24")
    link.get_by_label("IPv4", exact=True).fill("10.10.0.50/24")
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")

    # Back to a veth, the link meets bob again, and saves.
    link.get_by_label("Type").select_option("veth")
    link = link_fieldset(page, 1)
    expect(link.get_by_label("Node B")).to_have_value("bob")
    expect(text).not_to_have_value(re.compile(r"type: |network: lan"))
    link.get_by_label("IPv4 A").fill("10.255.0.1/30")
    link.get_by_label("IPv4 B").fill("10.255.0.2/30")
    expect(page.locator("#validity")).to_have_text("✓ Valid labfile")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(lab_url)
    expect(page.locator("#plan-commands")).to_contain_text("10.255.0.1/30")


PAIR = """\
labfile: 2
name: linked-live
networks: {lan: {driver: bridge, subnet: 10.10.0.0/24}}
nodes:
  r1: {networks: {lan: {}}}
  r2: {}
links:
  - endpoints: [r1:eth1, r2:eth0]
    ipv4: [10.0.12.1/30, 10.0.12.2/30]
"""


@pytest.fixture
def running_pair(manage_shell: Shell) -> Iterator[str]:
    """carol's lab PAIR, running on a host as the control worker records an agent's
    reports (the apply's result with each node's interfaces, samples with each
    interface's rates); the lab and the host are gone afterwards, so the other pages'
    tests still find no host."""
    now = time.time()
    samples = [
        {
            "token": "@TOKEN@",
            "node": node,
            "t": now - age,
            "cpu_percent": 1.0,
            "memory_current": 1 << 20,
            "pids": 2,
            "interfaces": [
                {"ifname": ifname, "rx_bps": 8000.0 * (age + 1), "tx_bps": 4000.0}
                for ifname in ifnames
            ],
        }
        for age in (3, 2, 1)
        for node, ifnames in (("r1", ["eth0", "eth1"]), ("r2", ["eth0"]))
    ]
    manage_shell(
        f"""
from django.contrib.auth.models import User
from django.utils import timezone
from labmgr.deployments.services import deployment_create, deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.services import lab_import
from labmgr.monitoring.services import metrics_record
carol = User.objects.get(username="carol")
host = Host.objects.create(name="links-host", slug="links-host", key="cd" * 32,
    status="online", last_seen=timezone.now())
lab = lab_import(owner=carol, text={PAIR!r})
deployment = deployment_create(lab=lab, owner=carol, host=host)
interface = lambda name, address: {{"ifname": name, "mac": "02:00:00:00:00:01",
    "addresses": [address]}}
deployment_result_record(deployment_id=deployment.pk, action="apply", ok=True, error="",
    nodes=[
        {{"name": "r1", "pid": 41, "netns": "lm1", "interfaces": [
            interface("eth0", "10.10.0.2/24"), interface("eth1", "10.0.12.1/30")]}},
        {{"name": "r2", "pid": 42, "netns": "lm2", "interfaces": [
            interface("eth0", "10.0.12.2/30")]}},
    ])
samples = {samples!r}
for sample in samples:
    sample["token"] = deployment.token
assert metrics_record(host="links-host", samples=samples) == 6
# r1's minute averages of an earlier hour, as the retention pass leaves them.
from datetime import UTC, datetime
from labmgr.monitoring.models import MINUTE, MetricSample
for minutes in (30, 90, 150):
    MetricSample.objects.create(deployment=deployment, node="r1", resolution=MINUTE,
        t=datetime.fromtimestamp({int(now)} - 60 * minutes, tz=UTC), cpu_percent=2.0,
        memory_current=1 << 20, pids=2, interfaces=[])
"""
    )
    yield "linked-live"
    manage_shell(
        "from labmgr.hosts.models import Host; from labmgr.labs.models import Lab; "
        "Lab.objects.filter(name='linked-live').delete(); "
        "Host.objects.filter(slug='links-host').delete()"
    )


def test_a_running_links_interfaces_are_in_the_charts_and_the_capture_picker(
    login: Login, shot: Shot, running_pair: str
) -> None:
    page = login("carol")
    page.goto("/")
    page.get_by_role("link", name=running_pair).first.click()
    expect(page.locator("#lab-status")).to_have_text("Running")

    # The capture picker: r1 offers its network's eth0 and its link's eth1, r2 its link's.
    expect(page.locator("#capture-node option")).to_have_text(["r1", "r2"])
    expect(page.locator("#capture-interface option")).to_have_text(["eth0", "eth1"])
    page.locator("#capture-node").select_option("r2")
    expect(page.locator("#capture-interface option")).to_have_text(["eth0"])

    # The charts: the link's interface has its own rx and tx series.
    expect(page.locator("#charts")).to_have_attribute("data-points", "3")
    # A longer window brings the minute averages of the hours before.
    page.locator("#metrics-window").select_option("86400")
    expect(page.locator("#charts")).to_have_attribute("data-points", "6")
    page.locator("#metrics-window").select_option("600")
    expect(page.locator("#charts")).to_have_attribute("data-points", "3")
    legend = page.locator("#charts")
    expect(legend).to_contain_text("eth1 rx")
    expect(legend).to_contain_text("eth1 tx")
    page.locator("#metrics-node").select_option("r2")
    expect(legend).to_contain_text("eth0 rx")
    expect(legend).not_to_contain_text("eth1 rx")
    shot(page, "live")
