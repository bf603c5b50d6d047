"""Wiring: an executor over this machine's real kernel, as the daemon, the command line,
the benchmark and the kernel tests use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from workers import config
from workers.executor import Executor, Progress
from workers.init.build import install
from workers.kernel import syscalls
from workers.kernel.cgroups import Cgroups
from workers.kernel.driver import KernelDriver


def kernel_executor(
    data_dir: Path | None = None,
    *,
    root_netns: str | None = None,
    progress: Progress | None = None,
    cgroups: Callable[[], Cgroups] = Cgroups,
) -> Executor:
    """An executor on this machine's kernel. `root_netns` names the namespace standing
    for the host (a simulated host); by default it is the agent's own. `cgroups` makes
    each job's view of the labs' cgroups (by default under the configured parent, held
    to this machine less the agent's reserve). Raises `NotBuilt` (workers.init.build)
    when set-up has not built the node init."""
    directory = data_dir or config.data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    # Journals, jobs, the host key and the nodes' files: root's alone (a node's root is
    # an unprivileged uid on the host, and must not even look inside).
    directory.chmod(0o700)
    lminit = install(directory)
    # Node inits are re-parented to the agent, which reaps them at once: a node's init
    # never lingers as a zombie between its exit and the lab's destroy.
    syscalls.set_child_subreaper()
    return Executor(
        directory,
        lambda: KernelDriver(directory, lminit, root_netns, cgroups()),
        progress=progress,
    )
