"""A labfile nested deeper than the reader's bound is refused with one sentence, in YAML
(flow and block style) and JSON, at 500 levels and at 100,000: never a RecursionError."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labplan import labfile
from labplan.errors import LabfileError
from labplan.reader import MAX_DEPTH

HEAD = "labfile: 1\nname: deep\n"


def _errors(text: str, fmt: str | None = None) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.load(text, fmt=fmt)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


# Each builder makes a document `depth` levels deep below its top-level key.
DEEP_DOCUMENTS: dict[str, tuple[Callable[[int], str], str]] = {
    "yaml flow lists": (lambda d: HEAD + "x: " + "[" * d + "]" * d + "\n", "yaml"),
    "yaml flow maps": (lambda d: HEAD + "x: " + "{a: " * d + "1" + "}" * d + "\n", "yaml"),
    "yaml block lists": (lambda d: HEAD + "x:\n" + "- " * d + "1\n", "yaml"),
    "yaml in a node's environment": (
        lambda d: HEAD + "nodes:\n  web:\n    environment:\n      A: " + "[" * d + "]" * d,
        "yaml",
    ),
    "json lists": (lambda d: '{"labfile": 1, "x": ' + "[" * d + "]" * d + "}", "json"),
    "json objects": (lambda d: '{"labfile": 1, "x": ' + '{"a": ' * d + "1" + "}" * d + "}", "json"),
}


@pytest.mark.parametrize("depth", [500, 100_000])
@pytest.mark.parametrize("kind", list(DEEP_DOCUMENTS))
def test_it_refuses_a_document_nested_too_deep(kind: str, depth: int) -> None:
    build, fmt = DEEP_DOCUMENTS[kind]
    text = build(depth)
    assert len(text.encode()) <= 1024 * 1024  # not refused for its size instead
    errors = _errors(text, fmt)
    assert len(errors) == 1
    assert errors[0].startswith(f": the document is nested deeper than {MAX_DEPTH} levels")


def test_it_refuses_a_deep_block_mapping() -> None:
    text = HEAD + "".join(" " * i + "a:\n" for i in range(500))
    assert _errors(text, "yaml") == [
        f": the document is nested deeper than {MAX_DEPTH} levels (line 35, column 33)"
    ]


def test_it_refuses_deep_nesting_when_the_format_is_detected() -> None:
    text = '{"labfile": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}"
    assert _errors(text) == [f": the document is nested deeper than {MAX_DEPTH} levels"]


def test_a_document_at_the_bound_reads_and_is_judged_on_its_fields() -> None:
    # MAX_DEPTH levels in all: the top mapping and the environment's nested lists.
    inner = MAX_DEPTH - 4
    text = HEAD + "nodes:\n  web:\n    environment:\n      A: " + "[" * inner + "]" * inner
    errors = _errors(text, "yaml")
    assert errors
    assert not any("nested deeper" in e for e in errors)
    assert all(e.startswith("nodes.web.environment.A") for e in errors)
