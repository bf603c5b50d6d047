"""Shared labfile builders for the labplan unit tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labplan.errors import LabfileError
from labplan.labfile import validate

HERE = Path(__file__).parent

BASE: dict[str, Any] = {
    "labfile": 1,
    "name": "demo",
    "networks": {
        "lan": {"driver": "bridge", "subnet": "10.10.0.0/24"},
        "dmz": {"driver": "bridge", "subnet": "10.20.0.0/24"},
    },
    "nodes": {
        "web": {"networks": {"lan": {}}},
        "db": {"networks": {"lan": {}, "dmz": {}}},
    },
}


@pytest.fixture
def campus_yaml() -> str:
    """The complete example of docs/labfile.md, without its comments."""
    return (HERE / "campus.yaml").read_text()


@pytest.fixture
def tree() -> dict[str, Any]:
    """A small valid lab: two bridges, two nodes; tests break one field of it."""
    return copy.deepcopy(BASE)


@pytest.fixture
def errors() -> Callable[[object], list[str]]:
    """The error lines validating a tree produces (it must be invalid)."""

    def collect(data: object) -> list[str]:
        with pytest.raises(LabfileError) as raised:
            validate(data)
        return [str(e) for e in raised.value.errors]

    return collect
