"""The node init, `lminit` (`lminit.c` beside this file): compiled at set-up, never at run
time, so a lab host needs no C compiler once it is installed.

`scripts/setup` runs `python -m workers.init.build`, which compiles the source into
`workers/init/lminit` with the digest of the source it came from (`lminit.sha256`), only
when either is missing or the source changed. An agent, or `python -m workers`, installs
that binary into its own data directory (root's alone) with `install` and runs it from
there; one that finds it missing or older than its source stops and says how to build it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "lminit.c"
BUILT = HERE / "lminit"
STAMP = HERE / "lminit.sha256"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-static-pie")
HOW = "run scripts/setup (or `python -m workers.init.build`) on this host"


class BuildError(Exception):
    """The node init could not be compiled; the message has the compiler's words."""


class NotBuilt(Exception):
    """The node init is not built, or is older than its source; the message says how to
    build it."""


def up_to_date() -> bool:
    """Whether the built init exists and was compiled from the source as it is now."""
    try:
        return BUILT.is_file() and STAMP.read_text().strip() == _digest()
    except FileNotFoundError:
        return False


def _digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def build() -> Path:
    """Compile the source into `BUILT` (static when the libc allows it) and stamp it."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise BuildError("no C compiler (cc) to build the node init; install gcc")
    digest = _digest()
    partial = BUILT.with_name(f".lminit.{os.getpid()}")
    for flags in (CFLAGS, CFLAGS[:-1]):
        done = subprocess.run(
            [compiler, *flags, "-o", str(partial), str(SOURCE)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            # Both replaced, not written over: an agent copying the binary never gets
            # half a file, and files another user built before are replaced too.
            partial.replace(BUILT)
            partial.write_text(digest + "\n")
            partial.replace(STAMP)
            return BUILT
    raise BuildError(f"building {SOURCE.name} failed:\n{done.stderr.decode(errors='replace')}")


def lminit_path(data_dir: Path) -> Path:
    """Where an agent with this data directory runs the node init from."""
    return data_dir / "bin" / "lminit"


def install(data_dir: Path) -> Path:
    """The node init in `data_dir`, copied there from the set-up's build unless the copy
    there is that very file already; NotBuilt if set-up has not built it."""
    if not BUILT.is_file():
        raise NotBuilt(f"the node init is not built ({BUILT} is missing): {HOW}")
    if not up_to_date():
        raise NotBuilt(f"the node init {BUILT} is older than {SOURCE.name}: {HOW}")
    target = lminit_path(data_dir)
    have, want = _stat(target), BUILT.stat()
    if have is not None and (have.st_size, have.st_mtime_ns) == (want.st_size, want.st_mtime_ns):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".lminit.{os.getpid()}")
    shutil.copy2(BUILT, partial)  # with its times: the next start sees the same file
    # Replaced, never written over: running node inits keep the file they started from.
    partial.replace(target)
    return target


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.init.build", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="only say (by exit status) whether it is up to date"
    )
    args = parser.parse_args(argv)
    if up_to_date():
        return 0
    if args.check:
        return 1
    try:
        print(f"built {build()}")
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
