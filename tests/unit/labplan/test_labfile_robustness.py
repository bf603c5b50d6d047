"""Whatever tree arrives, validation answers with a LabfileError, never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labfile_strategies import labfiles

from labplan.errors import LabfileError
from labplan.labfile import load, validate

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["10.0.0.0/24", "10.0.0.1", "none", "host", "lan", "8:0", "1M", "0/0"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += paths(value, (*prefix, i))
    return found


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labfiles(), st.data())
def test_a_broken_value_anywhere_gives_field_errors(tree: dict[str, Any], data: Any) -> None:
    path = data.draw(st.sampled_from(paths(tree)[1:]))
    target = tree
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(JUNK)
    try:
        validate(tree)
    except LabfileError as error:
        assert error.errors
        assert all(e.message for e in error.errors)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_gives_field_errors(text: str) -> None:
    try:
        load(text)
    except LabfileError as error:
        assert error.errors


def test_a_file_with_hundreds_of_problems_lists_the_first_200_and_counts_the_rest() -> None:
    tree = {
        "labfile": 1,
        "name": "many",
        "nodes": {f"n{i}": {"workdir": "relative"} for i in range(250)},
    }
    with pytest.raises(LabfileError) as caught:
        validate(tree)
    messages = [str(e) for e in caught.value.errors]
    assert len(messages) == 201
    assert messages[0].startswith("nodes.n0.workdir: ")
    assert messages[-1] == "... and 50 more problems"
