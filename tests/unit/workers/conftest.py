"""Fixtures of the agent's unit tests: the in-memory kernel (fake_kernel.py)."""

from __future__ import annotations

import pytest

from tests.unit.workers.fake_kernel import FakeKernel


@pytest.fixture
def kernel() -> FakeKernel:
    """A kernel with nothing of labmgr's in it; a test may declare its own host."""
    return FakeKernel()
