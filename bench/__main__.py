"""`python -m bench`: labmgr's deploy and teardown of N nodes on one bridge, against the
kernel baseline (`ip -batch` + `unshare`) doing the same work in the same run.

Prints a table of medians with min-max and the ratios PERF.md sets targets for, and writes
the raw results as JSON. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.api_run import ApiStack
from bench.baseline import Baseline
from bench.labmgr_run import LabmgrRun, labfile
from bench.web_run import lab_list_latencies, p95, seed_labs, status_fanout
from workers.kernel import syscalls

TARGETS = {
    "deploy_ratio_200": 1.5,
    "teardown_ratio_200": 1.5,
    "growth_1000_200": 5.5,
    "api_overhead_200": 0.3,  # seconds the queues and the control plane may add
    "lab_list_p95_ms": 200.0,  # 1,000 labs, 20 concurrent clients
    "ws_clients_missing": 0.0,  # of 50 websocket clients, those that missed a status
}
LIST_LABS, LIST_CLIENTS, LIST_SECONDS, WS_CLIENTS = 1000, 20, 10.0, 50


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def settle(timeout: float = 30.0, window: float = 0.25, idle_share: float = 0.85) -> None:
    """Wait until the machine is idle again after a teardown. Deleting namespaces and
    cgroups only queues them: the kernel dismantles them afterwards on its own workers,
    for seconds after 1,000 of them. Timing the next run meanwhile would charge it that
    work, the more the larger the run before it. Neither side's time includes this wait;
    on a machine that never goes idle it ends after `timeout`."""
    deadline = time.monotonic() + timeout
    quiet = 0
    busy, total = _cpu_times()
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(window)
        now_busy, now_total = _cpu_times()
        spent = (now_busy - busy) / max(now_total - total, 1)
        quiet = quiet + 1 if spent <= 1 - idle_share else 0
        busy, total = now_busy, now_total


def _filesystem(path: str) -> str:
    """The type of the filesystem `path` is on, from the mount table."""
    best, fstype = "", "?"
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point, kind = fields[4], fields[fields.index("-") + 1]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fstype = point, kind
    return fstype


def run_netns_on_tmpfs() -> str | None:
    """Where /run is not a tmpfs (most hosts mount one there), give this process and the
    ones it starts a tmpfs on /run/netns of their own, in a private mount namespace the
    host does not see: on a disk filesystem without a journal, ext4 makes every new file
    skip the inodes deleted in the last minute, so a namespace's mount point would cost
    more the more namespaces both sides made and removed before it. A note, or None."""
    fstype = _filesystem("/run/netns")
    if fstype == "tmpfs":
        return None
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount("none", "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE, None)
    os.makedirs("/run/netns", exist_ok=True)
    syscalls.mount("lmbench", "/run/netns", "tmpfs", 0, "mode=0755")
    return f"/run/netns is on {fstype} here: both sides ran with a private tmpfs there"


Run = tuple[Callable[[], Any], Callable[[Any], None]]  # setup, and teardown of its result


def measure(
    runs: dict[tuple[str, int], Run], repeat: int
) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Time each named (setup, teardown) pair `repeat` times, taking turns, so that pairs
    compared with each other meet the same machine; each run starts on an idle one."""
    times: dict[tuple[str, int], dict[str, list[float]]] = {
        key: {"setup": [], "teardown": []} for key in runs
    }
    for _ in range(repeat):
        for name, (setup, teardown) in runs.items():
            settle()
            t0 = time.perf_counter()
            state = setup()
            t1 = time.perf_counter()
            teardown(state)
            t2 = time.perf_counter()
            times[name]["setup"].append(t1 - t0)
            times[name]["teardown"].append(t2 - t1)
    return times


def measure_kernel(
    sizes: list[int],
    api_sizes: list[int],
    stack: ApiStack | None,
    tmp: Path,
    repeat: int,
    results: dict[str, dict[int, dict[str, list[float]]]],
) -> None:
    """labmgr's deploys (direct, and through the API on `stack`), then the baseline's,
    into `results`."""
    every = sorted(set(sizes) | set(api_sizes))
    # Sizes take turns too: the machine's speed drifts over minutes, and a ratio of two
    # sizes should not be a ratio of two moments. labmgr first: after the baseline's
    # teardown hundreds of its memory cgroups stay dying for a minute or more
    # (/proc/cgroups counts them; labmgr leaves none), and they slow whatever makes
    # cgroups next.
    labmgr_runs = {n: LabmgrRun(n, tmp) for n in every}
    runs: dict[tuple[str, int], Run] = {}
    for n, run in labmgr_runs.items():
        runs["labmgr", n] = (run.deploy, run.destroy)
        if stack is not None and n in api_sizes:
            lab = stack.create_lab(labfile(n))
            runs["api", n] = (partial(stack.deploy, lab), partial(stack.destroy, lab))
    for (kind, n), times in measure(runs, repeat).items():
        results[kind][n] = times
    for run in labmgr_runs.values():
        run.check_clean()
    print("  measured labmgr", file=sys.stderr)
    baselines = {("baseline", n): Baseline(n) for n in every}
    measured = measure({k: (b.setup, b.teardown) for k, b in baselines.items()}, repeat)
    for (kind, n), times in measured.items():
        results[kind][n] = times
    print("  measured the baseline", file=sys.stderr)


def web_targets(stack: ApiStack, repeat: int) -> dict[str, Any]:
    """PERF's web targets on the stack (bench.web_run); the lab list `repeat` times, each
    on an idle machine."""
    web: dict[str, Any] = {"fanout": status_fanout(stack, WS_CLIENTS)}
    seed_labs(stack, LIST_LABS)
    web["lab_list"] = []
    for _ in range(repeat):
        settle()
        web["lab_list"].append(lab_list_latencies(stack, LIST_CLIENTS, LIST_SECONDS))
    print("  measured the web targets", file=sys.stderr)
    return web


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--sizes", default="10,50,200,1000", help="node counts (default %(default)s)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per measurement (default %(default)s)"
    )
    parser.add_argument(
        "--json", default="bench/results/latest.json", help="where to write raw results"
    )
    parser.add_argument(
        "--api-sizes",
        default="200",
        help="node counts also deployed through the REST API and the queues "
        "(default %(default)s; '' for none)",
    )
    parser.add_argument(
        "--no-web",
        action="store_true",
        help=f"skip the web targets (the list of {LIST_LABS} labs under {LIST_CLIENTS} "
        f"clients, {WS_CLIENTS} websocket clients on one deployment)",
    )
    parser.add_argument(
        "--only-web",
        action="store_true",
        help="measure the web targets alone, on the API run's stack (no kernel runs)",
    )
    parser.add_argument(
        "--web-repeat",
        type=int,
        default=1,
        help="lab list measurements, one after the other on one stack (default %(default)s)",
    )
    args = parser.parse_args()
    if args.only_web and args.no_web:
        parser.error("--only-web and --no-web exclude each other")
    if os.geteuid() != 0:
        print(
            "python -m bench needs root: it builds real namespaces, links and cgroups",
            file=sys.stderr,
        )
        return 2
    sizes = [] if args.only_web else [int(s) for s in args.sizes.split(",")]
    api_sizes = [] if args.only_web else [int(s) for s in args.api_sizes.split(",") if s]
    results: dict[str, dict[int, dict[str, list[float]]]] = {
        "baseline": {},
        "labmgr": {},
        "api": {},
    }
    note = None if args.only_web else run_netns_on_tmpfs()
    web: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="labmgr-bench-") as tmp:
        # The whole product (bench.api_run) runs beside the agent's direct apply, in
        # turns, so that what the queues and the control plane add is a difference
        # between runs on the same machine state.
        stack = ApiStack(Path(tmp) / "stack") if api_sizes or not args.no_web else None
        try:
            if sizes or api_sizes:
                measure_kernel(sizes, api_sizes, stack, Path(tmp), args.repeat, results)
            if stack is not None and not args.no_web:
                web = web_targets(stack, args.web_repeat)
        finally:
            if stack is not None:
                stack.stop()

    med = {
        k: {n: {p: statistics.median(v) for p, v in r.items()} for n, r in d.items()}
        for k, d in results.items()
    }
    if sizes:
        print(
            f"\n{'N':>5}  {'baseline setup':>22} {'labmgr deploy':>22} {'ratio':>6}   "
            f"{'baseline teardown':>22} {'labmgr destroy':>22} {'ratio':>6}"
        )
    for n in sizes:
        b, lm = results["baseline"][n], results["labmgr"][n]
        print(
            f"{n:>5}  {summary(b['setup']):>22} {summary(lm['setup']):>22} "
            f"{med['labmgr'][n]['setup'] / med['baseline'][n]['setup']:>6.2f}   "
            f"{summary(b['teardown']):>22} {summary(lm['teardown']):>22} "
            f"{med['labmgr'][n]['teardown'] / med['baseline'][n]['teardown']:>6.2f}"
        )
    for n in api_sizes:
        a, lm = results["api"][n], results["labmgr"][n]
        added = med["api"][n]["setup"] - med["labmgr"][n]["setup"]
        print(
            f"\nN={n} through the API: deploy {summary(a['setup'])}, destroy "
            f"{summary(a['teardown'])}; the queues and control plane add {added:.3f} s "
            f"to the agent's own {summary(lm['setup'])}"
        )
    ratios: dict[str, float] = {}
    if web is not None:
        fanout = web["fanout"]
        print(f"\nLab list of {LIST_LABS} labs, {LIST_CLIENTS} clients for {LIST_SECONDS:.0f} s:")
        for latencies in web["lab_list"]:
            print(
                f"  {len(latencies)} requests, median "
                f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95(latencies) * 1000:.0f} ms"
            )
        print(
            f"{fanout['clients']} websocket clients on one lab: {fanout['complete']} received "
            f"every status ({' -> '.join(fanout['statuses'])})"
        )
        ratios["lab_list_p95_ms"] = statistics.median(p95(run) * 1000 for run in web["lab_list"])
        ratios["ws_clients_missing"] = fanout["clients"] - fanout["complete"]
    if 200 in api_sizes:
        ratios["api_overhead_200"] = med["api"][200]["setup"] - med["labmgr"][200]["setup"]
    if 200 in sizes:
        ratios["deploy_ratio_200"] = med["labmgr"][200]["setup"] / med["baseline"][200]["setup"]
        ratios["teardown_ratio_200"] = (
            med["labmgr"][200]["teardown"] / med["baseline"][200]["teardown"]
        )
    if 200 in sizes and 1000 in sizes:
        ratios["growth_1000_200"] = med["labmgr"][1000]["setup"] / med["labmgr"][200]["setup"]
    print(f"\n{note}" if note else "")
    for name, value in ratios.items():
        verdict = "ok" if value <= TARGETS[name] else "MISSED"
        print(f"{name:<20} {value:6.2f}  target <= {TARGETS[name]}  {verdict}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "kernel": platform.release(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "run_netns": note or "tmpfs",
                },
                "repeat": args.repeat,
                "results": {k: {str(n): r for n, r in d.items()} for k, d in results.items()},
                "web": web,
                "ratios": ratios,
                "targets": TARGETS,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nraw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
