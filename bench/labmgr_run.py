"""labmgr's side of the benchmark: the same lab as the baseline, as a labfile, deployed
and destroyed by the agent's executor in this process (what the Celery task calls)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from labplan.codec import plan_to_dict
from labplan.compiler import compile_plan
from labplan.labfile import validate
from labplan.naming import deployment_token
from workers.wiring import kernel_executor

DEPLOYMENT = 990_001  # far from the ids tests and real deployments use


def labfile(n: int) -> dict[str, object]:
    return {
        "labfile": 1,
        "name": f"bench-{n}",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.200.0.0/16", "gateway": "none"}},
        "nodes": {
            f"n{i}": {"networks": {"lan": {}}, "limits": {"memory": "256M", "pids": 128}}
            for i in range(n)
        },
    }


class LabmgrRun:
    def __init__(self, n: int, data_dir: Path) -> None:
        self.n = n
        self.executor = kernel_executor(data_dir / "agent")
        self.token = deployment_token(DEPLOYMENT)

    def deploy(self) -> None:
        plan = compile_plan(validate(labfile(self.n)), deployment=DEPLOYMENT)
        result = self.executor.apply(plan_to_dict(plan), host="local")
        assert len(result.nodes) == self.n, result

    def destroy(self, _state: object = None) -> None:
        self.executor.destroy(self.token)

    def check_clean(self) -> None:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left = [line for line in (links + netns).splitlines() if self.token in line]
        if left:
            raise SystemExit(f"labmgr left kernel objects behind: {left[:5]}")
