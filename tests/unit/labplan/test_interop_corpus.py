"""The corpus of containerlab topologies and compose files in tests/fixtures/interop: each
one imports, validates, compiles to a plan an agent accepts, and exports to its own tool
and back to the same lab; each file under refused/ is refused naming exactly the fields
its first line lists. (tests/kernel/test_interop_corpus_deploy.py deploys those that need
no image.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from labplan import codec, interop
from labplan.bounds import DEFAULT_VOLUME_SIZE
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.export import dump
from labplan.labfile import validate

CORPUS = Path(__file__).parents[2] / "fixtures" / "interop"
FILES = sorted(p for p in CORPUS.glob("*.y*ml"))
REFUSED = sorted((CORPUS / "refused").glob("*.y*ml"))


def source_format(path: Path) -> str:
    return interop.CONTAINERLAB if ".clab." in path.name else interop.COMPOSE


def test_the_corpus_holds_both_tools_files() -> None:
    assert {source_format(p) for p in FILES} == {interop.CONTAINERLAB, interop.COMPOSE}
    assert len(FILES) >= 8 and len(REFUSED) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_file_imports_validates_plans_and_comes_back(path: Path) -> None:
    text = path.read_text()
    imported = interop.to_labfile(text)  # told by content

    assert imported.source == source_format(path)
    lab = validate(imported.tree)
    plan = compile_plan(lab, deployment=1, underlay={"local": "192.0.2.1"})
    assert codec.plan_from_dict(codec.plan_to_dict(plan)) == plan  # as an agent decodes it
    assert not codec.guard_errors(plan)
    exported = interop.from_labfile(lab, imported.source)
    assert dump(validate(interop.to_labfile(exported.text).tree)) == dump(lab)


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: p.name)
def test_a_refused_file_names_the_fields_its_header_lists(path: Path) -> None:
    header = path.read_text().splitlines()[0]
    assert header.startswith("# refused: ")
    wanted = [p.strip() for p in header.removeprefix("# refused: ").split(",")]

    with pytest.raises(LabfileError) as refused:
        interop.to_labfile(path.read_text())

    assert sorted(e.path for e in refused.value.errors) == sorted(wanted)
    assert all(e.message for e in refused.value.errors)


def with_images() -> list[Path]:
    """The files whose nodes all run an image: what both tools can run."""
    return [
        path
        for path in FILES
        if all(
            (node or {}).get("image")
            for node in interop.to_labfile(path.read_text()).tree["nodes"].values()
        )
    ]


@pytest.mark.parametrize("path", with_images(), ids=lambda p: p.name)
def test_a_file_exported_to_the_other_tool_imports_there(path: Path) -> None:
    imported = interop.to_labfile(path.read_text())
    lab = validate(imported.tree)
    other = interop.COMPOSE if imported.source == interop.CONTAINERLAB else interop.CONTAINERLAB

    exported = interop.from_labfile(lab, other)
    again = validate(interop.to_labfile(exported.text).tree)

    assert {n.name for n in again.nodes} >= {n.name for n in lab.nodes if n.image}


@pytest.mark.parametrize("path", with_images(), ids=lambda p: p.name)
def test_a_file_exported_to_the_other_tool_keeps_its_mtus_volumes_and_mounts(path: Path) -> None:
    lab = validate(interop.to_labfile(path.read_text()).tree)
    source = source_format(path)
    other = interop.COMPOSE if source == interop.CONTAINERLAB else interop.CONTAINERLAB

    exported = interop.from_labfile(lab, other)
    again = validate(interop.to_labfile(exported.text).tree)

    mtus = {n.name: n.mtu for n in lab.networks}
    assert {n.name: n.mtu for n in again.networks if n.name in mtus}.items() <= mtus.items()
    assert [v.name for v in again.volumes] == [v.name for v in lab.volumes]
    assert {n.name: n.mounts for n in again.nodes} == {n.name: n.mounts for n in lab.nodes}
    sized = {f"volumes.{v.name}.size" for v in lab.volumes if v.size != DEFAULT_VOLUME_SIZE}
    if other == interop.CONTAINERLAB:  # a bind has no size: noted
        assert sized <= {note.path for note in exported.notes}
    else:
        assert [v.size for v in again.volumes] == [v.size for v in lab.volumes]
