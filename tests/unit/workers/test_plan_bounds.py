"""The agent refuses a plan past the bounds of `labplan.bounds` before it makes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.workers.fake_kernel import ALL_FACTS, FakeKernel
from workers.errors import ApplyError
from workers.executor import Executor


def test_a_forged_plan_of_100000_ops_is_refused_with_nothing_made(tmp_path: Path) -> None:
    kernel = FakeKernel()
    ops = [{"op": "create_netns", "netns": f"lm1-n{i % 36}"} for i in range(100_000)]
    plan = {
        "version": 1,
        "lab": "forged",
        "deployment": "lm1",
        "hosts": [{"host": "local", "deployment": "lm1", "group": 0x10001, "ops": ops}],
    }

    with pytest.raises(ApplyError, match="the plan holds 100,000 operations on its hosts"):
        Executor(tmp_path, kernel.driver, facts=ALL_FACTS).apply(plan, "local")

    assert kernel.objects() == []
    assert kernel.calls == 0
