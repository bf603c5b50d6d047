"""The gallery of shipped examples (`examples/*.yaml`), read from the repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from labplan import labfile as labfile_module
from labplan.errors import LabfileError


@dataclass(frozen=True)
class Example:
    name: str
    description: str
    # The comment block an example opens with: what to observe and how.
    notes: str
    text: str
    drivers: tuple[str, ...]
    nodes: int
    networks: int
    # The fields that make it an admin's alone to copy and deploy.
    admin_only: tuple[str, ...] = ()


def examples_dir() -> Path:
    return Path(settings.BASE_DIR) / "examples"


def example_list() -> list[Example]:
    """Every example that validates, by name; a broken file is left out, not shown."""
    found = []
    for path in sorted(examples_dir().glob("*.yaml")):
        example = _read(path)
        if example is not None:
            found.append(example)
    return found


def example_get(name: str) -> Example | None:
    path = examples_dir() / f"{name}.yaml"
    # The name comes from a URL: only a file directly in the examples folder will do.
    if path.parent != examples_dir() or not path.is_file():
        return None
    return _read(path)


def _read(path: Path) -> Example | None:
    text = path.read_text(encoding="utf-8")
    try:
        lab = labfile_module.load(text)
    except LabfileError:
        return None
    return Example(
        name=path.stem,
        description=lab.description,
        notes=_leading_comment(text),
        text=text,
        drivers=tuple(sorted({n.driver for n in lab.networks})),
        nodes=len(lab.nodes),
        networks=len(lab.networks),
        admin_only=tuple(need.path for need in labfile_module.admin_requirements(lab)),
    )


def _leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    return "\n".join(lines).strip()
