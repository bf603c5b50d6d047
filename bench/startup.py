"""`python -m bench.startup [--runs N] [--uncached]` (as root): how long the command line
takes to answer, as `python -m workers status NAME` against `python -c pass` (the
interpreter's own start), run alternately N times each; prints the medians, their
difference and whether it is under the target (TARGET_SECONDS).

NAME is a small lab (two nodes on a bridge) the benchmark deploys first through the
agent's executor into a data directory of its own, so the command does what a user's
does: it reads the journal and the kernel's interfaces of every node. The lab is
destroyed at the end. Each run is timed from its start to its exit, which is no earlier
than its first output.

Both commands run with their bytecode cached, as on an installed host, in a directory of
the benchmark's own (PYTHONPYCACHEPREFIX; the source tree is left as it was), even where
the environment says not to write it (PYTHONDONTWRITEBYTECODE). `--uncached` measures
the other case, every module compiled from its source on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labplan import codec, labfile, naming
from labplan.compiler import compile_plan
from workers.wiring import kernel_executor

TARGET_SECONDS = 0.15  # the status command's median, less `python -c pass`'s
LAB = "startup"
REPO = Path(__file__).resolve().parent.parent


def _seconds(argv: list[str], env: dict[str, str]) -> float:
    """One run's wall time, from its start to its exit; a failed run stops the benchmark."""
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return took


def measure(runs: int, cached: bool = True) -> dict[str, object]:
    """Deploy the lab, time both commands `runs` times each, taking turns, destroy it."""
    deployment = 2_050_000_000 + os.getpid() % 100_000
    lab = {
        "labfile": 1,
        "name": LAB,
        # A subnet no test and no other benchmark uses: it may run beside them.
        "networks": {"lan": {"driver": "bridge", "subnet": "10.241.0.0/24"}},
        "nodes": {"a": {"networks": {"lan": {}}}, "b": {"networks": {"lan": {}}}},
    }
    bare = [sys.executable, "-c", "pass"]
    status = [sys.executable, "-m", "workers", "status", LAB]
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as bytecode:
        env = {**os.environ, "LABMGR_AGENT_DATA_DIR": data}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if cached:
            env["PYTHONPYCACHEPREFIX"] = bytecode
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        executor = kernel_executor(Path(data))
        plan = codec.plan_to_dict(compile_plan(labfile.validate(lab), deployment=deployment))
        try:
            executor.apply(plan, "local")
            # The first run fills the page cache and the bytecode, and must find the lab.
            answer = subprocess.run(status, env=env, cwd=REPO, capture_output=True, text=True)
            if f"lab {LAB}" not in answer.stdout:
                raise SystemExit(f"the status command did not find the lab: {answer.stderr}")
            passes, statuses = [], []
            for _ in range(runs):
                passes.append(_seconds(bare, env))
                statuses.append(_seconds(status, env))
        finally:
            executor.destroy(naming.deployment_token(deployment))
    difference = statistics.median(statuses) - statistics.median(passes)
    return {
        "runs": runs,
        "bytecode_cached": cached,
        "python_c_pass_median_s": round(statistics.median(passes), 4),
        "status_median_s": round(statistics.median(statuses), 4),
        "difference_s": round(difference, 4),
        "target_s": TARGET_SECONDS,
        "met": difference < TARGET_SECONDS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=21, help="runs of each command")
    parser.add_argument("--uncached", action="store_true", help="compile every module on every run")
    args = parser.parse_args(argv)
    print(json.dumps(measure(max(args.runs, 1), cached=not args.uncached)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
