"""Kernel tests: real namespaces, links, cgroups and processes, as root.

Every lab gets a deployment id of its own (from this process's pid), and every test ends
by destroying it and proving, by listing the kernel, that nothing of it is left.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labplan import codec, labfile, naming
from labplan.compiler import compile_plan
from labplan.ops import SpawnNode
from workers.driver import NodeProcess
from workers.executor import ApplyResult, Executor
from workers.facts import Facts, probe
from workers.init.build import build as build_init
from workers.init.build import lminit_path, up_to_date
from workers.kernel import firewall
from workers.kernel.cgroups import Cgroups
from workers.kernel.processes import Processes
from workers.wiring import kernel_executor

PYTHON = "/usr/bin/python3"
_ids = itertools.count()
# Set by scripts/vm inside its guest, whose kernel has every feature the tests use and a
# pure cgroup v2 hierarchy: there, a skip for a missing one is a failure.
IN_VM = os.environ.get("LABMGR_TEST_VM") == "1"
LACKING = ("kernel lacks ", "host has no pure cgroup v2 hierarchy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kernel" in str(item.fspath):
            item.add_marker(pytest.mark.kernel)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="kernel tests need root"))
    if not IN_VM:  # what only the VM's older kernel shows is not this host's to run
        vm_only = [item for item in items if item.get_closest_marker("vm_only")]
        if vm_only:
            config.hook.pytest_deselected(items=vm_only)
            items[:] = [item for item in items if item not in vm_only]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if IN_VM and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(LACKING):
            report.outcome = "failed"
            report.longrepr = f"skipped in the VM tier, whose kernel has it all: {reason}"


def new_deployment() -> int:
    """A deployment id no other test (or test run) of this machine uses now."""
    return 2_000_000_000 + (os.getpid() % 100_000) * 100 + next(_ids)


@pytest.fixture(scope="session", autouse=True)
def node_init() -> None:
    """The node init as set-up builds it (workers.init.build), built again here if its
    source changed since, so an edited lminit.c is what these tests run."""
    if not up_to_date():
        build_init()


@pytest.fixture(scope="session")
def facts() -> Facts:
    return probe()


def leftovers(token: str) -> list[str]:
    """Every kernel object of the deployment still there, found by listing the kernel."""
    found = [f"netns {n}" for n in sorted(os.listdir("/run/netns")) if n.startswith(token + "-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found += [f"link {line}" for line in links.splitlines() if f" {token}-" in line]
    found += [f"cgroup {d}" for d in Cgroups().dirs(token) if d.exists()]
    found += [f"nft table {t}" for t in firewall.tables(token) if t == token]
    return found


@dataclass
class Lab:
    executor: Executor
    token: str
    result: ApplyResult

    def pid(self, node: str) -> int:
        return next(n.pid for n in self.result.nodes if n.name == node)

    def init(self, node: str) -> NodeProcess:
        """The node's init as the journal holds it: its pid and start time."""
        record = self.executor.journal.read(self.token)
        assert record is not None
        return record.nodes[node]

    def cgroup(self, node: str) -> str:
        record = self.executor.journal.read(self.token)
        assert record is not None
        plan = codec.plan_from_dict(record.header["plan"]).for_host(record.header["host"])
        assert plan is not None
        return next(op.cgroup for op in plan.ops if isinstance(op, SpawnNode) and op.node == node)

    def run(
        self, node: str, *command: str, timeout: float = 20
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node, the way `python -m workers exec` does."""
        processes = Processes(lminit_path(self.executor.data_dir), self.executor.data_dir)
        procs = Cgroups().procs_files(self.cgroup(node))
        done = processes.run(self.init(node), procs, command, {}, timeout=timeout)
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    def ping(self, node: str, address: str) -> bool:
        # An echo every 0.2 s until one is answered or 3 s pass: a link that has just
        # come up may drop the first ones (a macvlan child follows its parent's carrier a
        # moment later; under emulation a fresh sub-interface's first ARP can be late).
        result = self.run(node, "ping", "-c1", "-i0.2", "-w3", address)
        return result.returncode == 0


def compile_dict(data: dict[str, Any], deployment: int, **kwargs: Any) -> dict[str, Any]:
    plan = compile_plan(labfile.validate(data), deployment=deployment, **kwargs)
    return codec.plan_to_dict(plan)


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent")


@pytest.fixture
def build(data_dir: Path) -> Iterator[Any]:
    """Build labs from labfile dicts; destroys them after the test and proves it."""
    built: list[tuple[Executor, str]] = []

    def _build(data: dict[str, Any]) -> Lab:
        deployment = new_deployment()
        executor = kernel_executor(data_dir)
        token = naming.deployment_token(deployment)
        built.append((executor, token))
        result = executor.apply(compile_dict(data, deployment), "local")
        return Lab(executor, token, result)

    yield _build
    for executor, token in built:
        executor.destroy(token)
        assert leftovers(token) == []
