"""`python -m bench.live` (as root): how long a live impairment change takes at the agent
on a running lab of N nodes (a chain of N-1 links, bench.links's), against the same
change on a lab of 2 nodes in the same run. PERF.md's target: within 50 ms at the agent
for 200 nodes.

Each change goes through the agent's whole `live` job (Agent.run, as a message would:
the journal read, the plan decoded, the interface found, the qdiscs of both ends of one
link replaced), alternately setting a rate and taking it away. Two figures: the job's
time (what a user waits for, less the broker) and the kernel's part alone (the answer's
`seconds`). A rate is what this host's kernel can change (it has no netem); a netem
change takes the same path."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.labmgr_run import DEPLOYMENT
from bench.links import chain
from labplan import live
from labplan.codec import plan_to_dict
from labplan.compiler import compile_plan
from labplan.labfile import validate
from labplan.naming import deployment_token
from workers.agent import Agent
from workers.jobs import Job
from workers.wiring import kernel_executor

TARGET_MS = 50.0


def measure(n: int, changes: int, data_dir: Path) -> dict[str, list[float]]:
    deployment = DEPLOYMENT + 20 + n
    token = deployment_token(deployment)
    lab = validate(chain(n))
    executor = kernel_executor(data_dir)
    executor.apply(plan_to_dict(compile_plan(lab, deployment=deployment)), host="local")
    agent = Agent(executor, send=lambda task, report: None, host="local")
    middle = f"n{n // 2}:eth1"
    state = live.State()
    jobs: list[float] = []
    kernel: list[float] = []
    try:
        for i in range(changes):
            rate = {"rate": "10mbit"} if i % 2 == 0 else {}
            todo, after = live.plan(lab, state, live.parse({"set": {"link": middle, **rate}}))
            began = time.perf_counter()
            answer = agent.run(
                None, Job.LIVE, {"deployment": deployment, "token": token, "changes": todo}
            )
            jobs.append((time.perf_counter() - began) * 1000)
            assert answer["ok"], answer
            kernel.append(float(answer["seconds"]) * 1000)
            state = after
    finally:
        executor.destroy(token)
    return {"job_ms": jobs, "kernel_ms": kernel}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--changes", type=int, default=40, help="per lab (default %(default)s)")
    parser.add_argument("--json", default="bench/results/live.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("python -m bench.live needs root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="labmgr-bench-live-") as tmp:
        base = measure(2, args.changes, Path(tmp))
        large = measure(args.nodes, args.changes, Path(tmp))
    results = {}
    for name, times in (("2", base), (str(args.nodes), large)):
        results[name] = {
            key: {
                "median": statistics.median(values),
                "p95": sorted(values)[int(0.95 * (len(values) - 1))],
            }
            for key, values in times.items()
        }
        job, kern = results[name]["job_ms"], results[name]["kernel_ms"]
        print(
            f"N={name}: live change at the agent {job['median']:.1f} ms median, "
            f"{job['p95']:.1f} ms p95 (kernel {kern['median']:.1f} ms median)"
        )
    p95 = results[str(args.nodes)]["job_ms"]["p95"]
    growth = results[str(args.nodes)]["job_ms"]["median"] / results["2"]["job_ms"]["median"]
    verdict = "ok" if p95 <= TARGET_MS else "MISSED"
    print(f"live_change_p95_ms_{args.nodes}  {p95:.1f}  target <= {TARGET_MS:g}  {verdict}")
    print(f"live_change_growth_{args.nodes}_2  {growth:.2f}  (same change, 2-node lab as baseline)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"changes": args.changes, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
