"""The node init is built at set-up, not when the agent starts: the agent installs the
built binary into its data directory, and one that finds it missing or older than its
source stops with the way to build it."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from workers import cli
from workers.init import build
from workers.init.build import NotBuilt, install, lminit_path


@pytest.fixture
def init_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The source, the binary and its stamp in a directory of the test's own."""
    here = tmp_path / "init"
    here.mkdir()
    shutil.copy(build.SOURCE, here / "lminit.c")
    monkeypatch.setattr(build, "SOURCE", here / "lminit.c")
    monkeypatch.setattr(build, "BUILT", here / "lminit")
    monkeypatch.setattr(build, "STAMP", here / "lminit.sha256")
    return here


def built_as_set_up_does(init: Path, binary: bytes) -> None:
    """A stand-in for the compiled init, stamped with the source's digest as `build` does."""
    target = init / "lminit"
    partial = init / ".partial"
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    digest = hashlib.sha256((init / "lminit.c").read_bytes()).hexdigest()
    (init / "lminit.sha256").write_text(digest + "\n")


def test_set_up_builds_the_init_once_and_again_when_its_source_changes(init_files: Path) -> None:
    assert build.main(["--check"]) == 1

    assert build.main([]) == 0
    built = (init_files / "lminit").stat()
    assert (init_files / "lminit").read_bytes()[:4] == b"\x7fELF"
    assert build.main(["--check"]) == 0
    assert build.main([]) == 0 and (init_files / "lminit").stat().st_ino == built.st_ino

    with (init_files / "lminit.c").open("a") as source:
        source.write("\n/* changed */\n")
    assert build.main(["--check"]) == 1
    assert build.main([]) == 0
    assert (init_files / "lminit").stat().st_ino != built.st_ino


def test_the_agent_runs_a_private_copy_of_the_built_init(init_files: Path, tmp_path: Path) -> None:
    built_as_set_up_does(init_files, b"\x7fELF first")
    data = tmp_path / "agent"

    installed = install(data)

    assert installed == lminit_path(data) == data / "bin" / "lminit"
    assert installed.read_bytes() == b"\x7fELF first"
    assert os.access(installed, os.X_OK)
    first = installed.stat().st_ino
    assert install(data).stat().st_ino == first  # the same file: not copied again
    built_as_set_up_does(init_files, b"\x7fELF second")  # set-up built it again
    assert install(data).read_bytes() == b"\x7fELF second"
    assert installed.stat().st_ino != first


def test_without_the_built_init_the_agent_says_to_run_set_up(
    init_files: Path, tmp_path: Path
) -> None:
    with pytest.raises(NotBuilt) as missing:
        install(tmp_path / "agent")

    assert str(missing.value) == (
        f"the node init is not built ({init_files / 'lminit'} is missing): run scripts/setup "
        "(or `python -m workers.init.build`) on this host"
    )
    assert not (tmp_path / "agent" / "bin" / "lminit").exists()


def test_an_init_older_than_its_source_is_not_run(init_files: Path, tmp_path: Path) -> None:
    built_as_set_up_does(init_files, b"\x7fELF")
    with (init_files / "lminit.c").open("a") as source:
        source.write("\n/* changed */\n")

    with pytest.raises(NotBuilt, match=r"older than lminit\.c: run scripts/setup"):
        install(tmp_path / "agent")


def test_the_command_line_without_the_built_init_says_so_without_a_traceback(
    init_files: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LABMGR_AGENT_DATA_DIR", str(tmp_path / "agent"))

    status = cli.main(["status", "two-nodes"])

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("the node init is not built") and "run scripts/setup" in err
    assert "Traceback" not in err
