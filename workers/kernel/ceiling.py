"""The ceiling of the `labmgr` parent cgroup: the machine's CPUs, memory and process ids
less the reserve the agent keeps for the host (workers.config.reserve). The agent writes
it on its own parent, whatever a message says, so all labs of the host together, in a
reservation or not, leave the host its reserve: a fork bomb or a memory hog in a lab
stops at the ceiling, and the agent, the web and sshd keep CPU, memory and pids.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

from labplan.messages import CPU_PERIOD
from labplan.units import format_size
from workers import config

# The least a ceiling may leave labs: the kernel's smallest quota (1 ms per period),
# 1 MiB, one process.
FLOOR = {"cpus": 0.01, "memory": 1 << 20, "pids": 1}
PROC = Path("/proc")


@dataclass(frozen=True)
class Machine:
    """What this machine has: CPUs the agent may run on, bytes of RAM, process ids."""

    cpus: float
    memory: int
    pids: int


@dataclass(frozen=True)
class Ceiling:
    """What all labs of the host together may use: CPUs (a quota per period), bytes of
    memory, processes."""

    cpus: float
    memory: int
    pids: int

    def limits(self) -> list[tuple[str, str]]:
        """The v2 keys and values written on the `labmgr` parent."""
        quota = max(round(self.cpus * CPU_PERIOD), 1000)
        return [
            ("cpu.max", f"{quota} {CPU_PERIOD}"),
            ("memory.max", str(self.memory)),
            ("pids.max", str(self.pids)),
        ]


def machine(proc: Path = PROC) -> Machine:
    """This machine's CPUs (those the agent may run on), RAM and process ids (the
    smaller of pid_max and threads-max: both bound how many tasks can exist)."""
    memory = 0
    for line in (proc / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
            break
    pids = min(
        int((proc / "sys/kernel/pid_max").read_text()),
        int((proc / "sys/kernel/threads-max").read_text()),
    )
    return Machine(float(len(os.sched_getaffinity(0))), memory, pids)


def ceiling_of(whole: Machine, reserve: config.Reserve) -> Ceiling:
    """`whole` less `reserve`; refused, naming the setting, when the reserve would leave
    labs nothing of a kind."""
    left: dict[str, float] = {}
    for kind in ("cpus", "memory", "pids"):
        total = float(getattr(whole, kind))
        kept = getattr(reserve, kind).of(total)
        left[kind] = total - kept
        if not left[kind] >= FLOOR[kind]:
            amount = _amount(kind, kept), _amount(kind, total)
            raise ValueError(
                f"LABMGR_AGENT_RESERVE_{kind.upper()} keeps {amount[0]} of this machine's "
                f"{amount[1]} of {kind}: labs would get none"
            )
    return Ceiling(math.floor(left["cpus"] * 1000) / 1000, int(left["memory"]), int(left["pids"]))


def _amount(kind: str, value: float) -> str:
    return str(format_size(int(value))) if kind == "memory" else f"{value:g}"


@functools.cache
def host_ceiling() -> Ceiling:
    """The ceiling of this machine, from the agent's reserve settings; read once."""
    return ceiling_of(machine(), config.reserve())
