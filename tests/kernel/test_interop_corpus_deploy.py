"""The interop corpus on the real kernel: each containerlab topology or compose file of
tests/fixtures/interop is imported, deployed, reached between its nodes over its links and
networks, and destroyed, leaving nothing: those whose nodes need no image run the host's
tree; those with images run one offline image loaded into the agent's store under each
reference the file names (no registry is reachable here; pulling from a real one is the
system tier's image tests). A host interface a file names as a macvlan parent or a
tunnel's underlay is a veth of the test's own here, a host link's host-side name one of the
test's, and a host path a directory of the test's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labplan import interop
from labplan.labfile import admin_requirements, validate
from labplan.model import Labfile
from tests.imagekit import APPLETS, build_busybox_image
from workers.facts import Facts
from workers.wiring import kernel_executor

CORPUS = Path(__file__).parents[1] / "fixtures" / "interop"


def imageless() -> list[Path]:
    found = []
    for path in sorted(CORPUS.glob("*.y*ml")):
        tree = interop.to_labfile(path.read_text()).tree
        if not any((node or {}).get("image") for node in tree.get("nodes", {}).values()):
            found.append(path)
    return found


def test_the_corpus_has_a_file_to_deploy() -> None:
    assert [p.name for p in imageless()] == ["bare.clab.yml"]


@pytest.mark.parametrize("path", imageless(), ids=lambda p: p.name)
def test_an_imageless_file_deploys_and_its_nodes_reach_each_other(path: Path, build: Any) -> None:
    tree = interop.to_labfile(path.read_text()).tree
    lab = validate(tree)
    built = build(tree)

    addressed = {
        node.name: [a.ipv4 for a in node.networks if a.ipv4]
        + [
            end.ipv4.split("/")[0]
            for link in lab.links
            for end in link.ends
            if end.node == node.name and end.ipv4
        ]
        for node in lab.nodes
    }
    first, *others = sorted(addressed)
    for other in others:
        for address in addressed[other]:
            assert built.ping(first, address), f"{first} -> {other} {address}"


# --- the files whose nodes run images ------------------------------------------------------


def with_images() -> list[Path]:
    return [path for path in sorted(CORPUS.glob("*.y*ml")) if path not in imageless()]


@pytest.fixture(scope="module")
def box_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One offline image (busybox, tests.imagekit) that stands in for every image the
    corpus names: no registry is reachable here, and what is tested is the lab's wiring."""
    work = tmp_path_factory.mktemp("corpus-image")
    layout = work / "layout"
    build_busybox_image(layout, "1", cmd=["sleep", "3600"])
    archive = work / "box.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True)
    return archive


@pytest.fixture
def parent_link() -> Iterator[str]:
    """A veth pair in the host's namespace, both ends up, made and removed by the test."""
    name = "ctest-mvp0"
    subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", "ctest-mvp1"], check=True
    )
    try:
        for end in (name, "ctest-mvp1"):
            subprocess.run(["ip", "link", "set", end, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_the_corpus_has_files_with_images() -> None:
    assert len(with_images()) >= 5


@pytest.mark.parametrize("path", with_images(), ids=lambda p: p.name)
def test_a_file_with_images_deploys_and_its_nodes_reach_each_other(
    path: Path,
    build: Any,
    data_dir: Path,
    box_archive: Path,
    tmp_path: Path,
    parent_link: str,
    facts: Facts,
) -> None:
    tree = interop.to_labfile(path.read_text()).tree
    # An admin's host interface as a macvlan parent becomes a veth of this test's own: a
    # host's real interfaces stay out of tests.
    for network in tree.get("networks", {}).values():
        if str(network.get("parent", "")).startswith("host:"):
            network["parent"] = f"host:{parent_link}"
    # A host link's name on the host is one of the test's, and a tunnel's underlay is the
    # test's veth with a remote of the benchmarking range: nothing it sends leaves that veth.
    for index, link in enumerate(tree.get("links", ())):
        if link.get("type") == "host":
            link["host_ifname"] = f"ctest-hl{index}"
        if link.get("type") == "vxlan":
            link["parent"], link["remote"] = parent_link, f"198.18.0.{index + 1}"
        if link.get("type") == "dummy" and "dummy" not in facts.link_kinds:
            pytest.skip("kernel lacks dummy links")
    lab = validate(tree)
    reaching = [
        e
        for e in admin_requirements(lab)
        if not e.path.endswith((".host", ".parent"))
        and not (e.path.startswith("links.") and e.path.endswith(".type"))
    ]
    assert not reaching, "every file of the corpus deploys here"
    # An admin's host paths become directories of this test.
    for name, node in tree.get("nodes", {}).items():
        for index, mount in enumerate(node.get("mounts", ())):
            if "host" in mount:
                mount["host"] = str(tmp_path / f"{name}-{index}")
                Path(mount["host"]).mkdir()
    # A command of a program the stand-in image lacks (python) idles instead.
    for node in tree.get("nodes", {}).values():
        for key in ("entrypoint", "command"):
            argv = node.get(key) or ()
            if argv and Path(argv[0]).name not in APPLETS:
                node[key] = ["sleep", "3600"]
    store = kernel_executor(data_dir).images
    for ref in sorted({node.image for node in lab.nodes if node.image}):
        store.load(box_archive, ref)

    built = build(tree)

    netns = {n.name: n.netns for n in built.result.nodes}
    addressed = {
        node.name: [a.ipv4 for a in node.networks if a.ipv4]
        + [
            e.ipv4.split("/")[0]
            for link in lab.links
            for e in link.ends
            if e.node == node.name and e.ipv4
        ]
        for node in lab.nodes
    }
    assert all(netns[node.name] is not None for node in lab.nodes if addressed[node.name])
    for node in lab.nodes:
        status = built.run(node.name, "true")
        assert status.returncode == 0, f"{node.name}: {status.stderr}"
    # Every link of one endpoint is its node's interface with its addresses, and a host
    # link's host side answers to the name it was given.
    for port in lab.ports:
        shown = subprocess.run(
            ["ip", "netns", "exec", str(netns[port.end.node]), "ip", "-o", "addr", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        device = ["ip", "netns", "exec", str(netns[port.end.node]), "ip", "link", "show"]
        there = subprocess.run([*device, "dev", port.end.ifname], check=False)
        assert there.returncode == 0, f"links.{port.index}: no {port.end.ifname} in the node"
        if port.end.ipv4:
            assert f"inet {port.end.ipv4} " in shown, f"links.{port.index}: {shown}"
        if port.host_ifname:
            side = subprocess.run(["ip", "link", "show", "dev", port.host_ifname], check=False)
            assert side.returncode == 0, f"links.{port.index}: no {port.host_ifname} on the host"
    # Every addressed node reaches every other one on a network or link they share.
    pinged = 0
    for first in lab.nodes:
        for other in lab.nodes:
            if other is first or not addressed[first.name]:
                continue
            for address in _shared(lab, first.name, other.name):
                ping = subprocess.run(
                    ["ip", "netns", "exec", str(netns[first.name]), "ping", "-c1", "-W3", address],
                    capture_output=True,
                    check=False,
                )
                assert ping.returncode == 0, f"{first.name} -> {other.name} {address}"
                pinged += 1
    # Every file of the corpus with two addressed nodes has two that meet.
    assert pinged >= 2 or sum(1 for a in addressed.values() if a) < 2


def _shared(lab: Labfile, first: str, other: str) -> list[str]:
    """The IPv4 addresses of `other` on the networks and links it shares with `first`."""
    mine = {a.network for a in lab.node(first).networks if a.ipv4}
    found = [a.ipv4 for a in lab.node(other).networks if a.network in mine and a.ipv4]
    for link in lab.links:
        ends = {end.node: end for end in link.ends}
        if first in ends and other in ends and ends[other].ipv4:
            found.append(str(ends[other].ipv4).split("/")[0])
    return [str(address) for address in found]
