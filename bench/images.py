"""`python -m bench.images`: N nodes of one image against N nodes on the host's tree, in
the same run, taking turns (PERF.md: within 1.2x once the image is pulled), and the first
pull's time apart: a small image the benchmark builds offline (tests.imagekit: busybox
from the host) is pushed to a real registry (Debian's docker-registry on loopback), pulled
once into the store, then every image deploy starts from the store. Needs root."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import measure, summary
from bench.labmgr_run import DEPLOYMENT, labfile
from labplan.codec import plan_to_dict
from labplan.compiler import compile_plan
from labplan.labfile import validate
from labplan.naming import deployment_token
from tests.imagekit import Registry, build_busybox_image
from workers.wiring import kernel_executor

TARGET = 1.2  # image deploy / host-tree deploy, N=200


class Deploys:
    """labmgr's deploys of the same N-node lab, on the host tree or on an image."""

    def __init__(self, n: int, data_dir: Path, image: str | None) -> None:
        self.n, self.image = n, image
        self.executor = kernel_executor(data_dir)
        self.deployment = DEPLOYMENT + (1 if image else 0)

    def deploy(self) -> None:
        lab = labfile(self.n)
        if self.image is not None:
            nodes = lab["nodes"]
            assert isinstance(nodes, dict)
            for node in nodes.values():
                node["image"] = self.image
                node["command"] = ["sleep", "3600"]
        plan = compile_plan(validate(lab), deployment=self.deployment)
        result = self.executor.apply(plan_to_dict(plan), host="local")
        assert len(result.nodes) == self.n, result

    def destroy(self, _state: object = None) -> None:
        self.executor.destroy(deployment_token(self.deployment))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.images", description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="nodes (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5, help="runs (default %(default)s)")
    parser.add_argument("--json", default="bench/results/images.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("python -m bench.images needs root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="labmgr-bench-images-") as tmp:
        work = Path(tmp)
        build_busybox_image(work / "layout", "1", cmd=["sleep", "3600"])
        with Registry(work / "registry") as registry:
            ref = registry.push(work / "layout", "1", "bench/box")
            os.environ["LABMGR_INSECURE_REGISTRIES"] = registry.address
            agent = work / "agent"
            store = kernel_executor(agent).images
            t0 = time.perf_counter()
            image = store.ensure(ref)
            first_pull = time.perf_counter() - t0
        tree, imaged = Deploys(args.n, agent, None), Deploys(args.n, agent, ref)
        runs = {
            ("host tree", args.n): (tree.deploy, tree.destroy),
            ("image", args.n): (imaged.deploy, imaged.destroy),
        }
        times = measure(runs, args.repeat)
        store.remove([image.digest], {})
    host = times["host tree", args.n]["setup"]
    img = times["image", args.n]["setup"]
    ratio = statistics.median(img) / statistics.median(host)
    print(f"first pull of {ref} ({image.size} bytes): {first_pull:.3f} s")
    print(f"N={args.n} deploy: host tree {summary(host)}, image {summary(img)}")
    print(
        f"N={args.n} destroy: host tree {summary(times['host tree', args.n]['teardown'])}, "
        f"image {summary(times['image', args.n]['teardown'])}"
    )
    verdict = "ok" if ratio <= TARGET else "MISSED"
    print(f"image_deploy_ratio_{args.n}  {ratio:.2f}  target <= {TARGET}  {verdict}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "first_pull_seconds": first_pull,
                "n": args.n,
                "repeat": args.repeat,
                "times": {f"{k[0]}": v for k, v in times.items()},
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
