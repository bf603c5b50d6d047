"""`python -m bench.metrics --measure N` (as root): what sampling N running nodes at 1 Hz
costs the agent (workers.metrics), as CPU seconds per second and a percentage of one core.
It builds the nodes on one bridge through the agent's executor, samples them with the
agent's sampler, and destroys them."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from labplan import codec, labfile, naming
from labplan.compiler import compile_plan
from workers.metrics import Sampler
from workers.wiring import kernel_executor


def measure(nodes: int, seconds: float = 10.0) -> dict[str, float]:
    """Build `nodes` nodes on one bridge, sample them at 1 Hz for `seconds`, destroy
    them: CPU seconds spent sampling per second, as a percentage of one core."""
    deployment = 2_100_000_000 + os.getpid() % 100_000
    lab = {
        "labfile": 1,
        "name": "metrics",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.239.0.0/20"}},
        "nodes": {f"n{i}": {"networks": {"lan": {}}} for i in range(nodes)},
    }
    with tempfile.TemporaryDirectory() as directory:
        executor = kernel_executor(Path(directory))
        plan = codec.plan_to_dict(compile_plan(labfile.validate(lab), deployment=deployment))
        token = naming.deployment_token(deployment)
        try:
            executor.apply(plan, "local")
            sampler = Sampler(Path(directory) / "journal")
            sampler.sample()  # the first pass reads the journal and resolves paths
            rounds = max(int(seconds), 1)
            cpu = 0.0
            for _ in range(rounds):
                began = time.thread_time()
                batch = sampler.sample()
                cpu += time.thread_time() - began
                time.sleep(1.0)
            assert len(batch) == nodes, f"sampled {len(batch)} of {nodes} nodes"
        finally:
            executor.destroy(token)
    return {
        "nodes": nodes,
        "cpu_seconds_per_second": cpu / rounds,
        "percent_of_one_core": cpu / rounds * 100,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__)
    parser.add_argument(
        "--measure", type=int, metavar="N", required=True, help="nodes to build and sample"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.measure, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
