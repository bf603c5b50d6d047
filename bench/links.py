"""`python -m bench.links`: a chain of N nodes on N-1 point-to-point links (labfile 2),
deployed and destroyed by the agent's executor, for N=200 and N=1000 taking turns in the
same run. PERF.md's target for bridges holds for links too: deploy(1000)/deploy(200) <=
5.5, linear time. Needs root."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.__main__ import Run, measure, summary
from bench.labmgr_run import DEPLOYMENT
from labplan.codec import plan_to_dict
from labplan.compiler import compile_plan
from labplan.labfile import validate
from labplan.naming import deployment_token
from workers.wiring import kernel_executor

TARGET = 5.5  # deploy(1000) / deploy(200)


def chain(n: int) -> dict[str, object]:
    """n nodes, each linked to the next on a /31 of 10.201.0.0/16 (eth1 to the previous,
    eth2 to the next)."""

    def address(i: int, end: int) -> str:
        value = (10 << 24) | (201 << 16) | (2 * i + end)
        return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0)) + "/31"

    return {
        "labfile": 2,
        "name": f"chain-{n}",
        "nodes": {f"n{i}": {"limits": {"memory": "256M", "pids": 128}} for i in range(n)},
        "links": [
            {
                "endpoints": [f"n{i}:eth2", f"n{i + 1}:eth1"],
                "ipv4": [address(i, 0), address(i, 1)],
            }
            for i in range(n - 1)
        ],
    }


class Chain:
    def __init__(self, n: int, data_dir: Path) -> None:
        self.n = n
        self.executor = kernel_executor(data_dir)
        self.deployment = DEPLOYMENT + 10 + n

    def deploy(self) -> None:
        plan = compile_plan(validate(chain(self.n)), deployment=self.deployment)
        result = self.executor.apply(plan_to_dict(plan), host="local")
        assert len(result.nodes) == self.n, result

    def destroy(self, _state: object = None) -> None:
        self.executor.destroy(deployment_token(self.deployment))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.links", description=__doc__)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs (default %(default)s)")
    parser.add_argument("--json", default="bench/results/links.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("python -m bench.links needs root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="labmgr-bench-links-") as tmp:
        small, large = Chain(args.small, Path(tmp)), Chain(args.large, Path(tmp))
        runs: dict[tuple[str, int], Run] = {
            ("chain", args.small): (small.deploy, small.destroy),
            ("chain", args.large): (large.deploy, large.destroy),
        }
        times = measure(runs, args.repeat)
    few, many = times["chain", args.small], times["chain", args.large]
    ratio = statistics.median(many["setup"]) / statistics.median(few["setup"])
    for n, t in ((args.small, few), (args.large, many)):
        print(
            f"N={n} chain ({n - 1} links): deploy {summary(t['setup'])},"
            f" destroy {summary(t['teardown'])}"
        )
    verdict = "ok" if ratio <= TARGET else "MISSED"
    print(f"links_growth_{args.large}_{args.small}  {ratio:.2f}  target <= {TARGET}  {verdict}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "repeat": args.repeat,
                "times": {str(n): t for (_, n), t in times.items()},
                "ratio": ratio,
                "target": TARGET,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
