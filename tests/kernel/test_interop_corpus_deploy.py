"""The interop corpus on the real kernel: each containerlab topology or compose file of
tests/fixtures/interop whose nodes need no image (they run the host's tree) is imported,
deployed, reached between its nodes over its links and its management network, and
destroyed, leaving nothing. (Files with images are deployed by the system tier's image
tests; here every file is at least checked to import, tests/unit/labplan.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labplan import interop
from labplan.labfile import validate

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
