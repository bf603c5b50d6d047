"""Builds the node init (`lminit.c`) with the system C compiler into the agent's data
directory, when the binary is missing or older than its source."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("lminit.c")
CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-static-pie")


class BuildError(Exception):
    pass


def lminit_path(data_dir: Path) -> Path:
    """The init binary, compiled first if it is missing or stale."""
    target = data_dir / "bin" / "lminit"
    if target.exists() and target.stat().st_mtime >= SOURCE.stat().st_mtime:
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise BuildError("no C compiler (cc) to build the node init; install gcc")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".lminit.{os.getpid()}")
    for flags in (CFLAGS, CFLAGS[:-1]):  # a static build when the libc allows it
        done = subprocess.run(
            [compiler, *flags, "-o", str(partial), str(SOURCE)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            partial.replace(target)  # atomic: a concurrent agent never runs half a file
            return target
    raise BuildError(f"building {SOURCE.name} failed:\n{done.stderr.decode(errors='replace')}")
