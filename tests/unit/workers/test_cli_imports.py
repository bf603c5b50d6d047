"""The command line loads only what the subcommand it runs needs: a status never pays for
pyroute2 (its package loads ~100 modules), Celery, or the labfile reader and compiler;
--help for none of the agent's code. Asserted on the modules a fresh interpreter holds
after the command, never on a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the command line as `python -m workers` does, then lists the modules it loaded.
SCRIPT = """
import json, os, sys
from workers import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
with open(os.environ["MODULES_OUT"], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""
NEVER_FOR_STATUS = ("pyroute2", "celery", "kombu", "yaml", "labplan.labfile", "labplan.compiler")


def run_cli(tmp_path: Path, *argv: str, stdin: str = "") -> tuple[int, set[str], str]:
    """The exit status, the loaded modules and the standard error of one command."""
    out = tmp_path / "modules.json"
    env = {**os.environ, "LABMGR_AGENT_DATA_DIR": str(tmp_path / "agent"), "MODULES_OUT": str(out)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(out.read_text())
    return found["code"], set(found["modules"]), done.stderr


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_the_status_command_loads_neither_pyroute2_nor_celery_nor_the_labfile_reader(
    tmp_path: Path,
) -> None:
    code, modules, err = run_cli(tmp_path, "status", "no-such-lab")

    # Without the built node init (a bare checkout) the command stops before the journal.
    if "the node init" in err:
        assert code == 2 and "run scripts/setup" in err
    else:
        assert (code, err) == (1, "no deployment 'no-such-lab' on this host\n")
    assert "workers.status" in modules
    for package in NEVER_FOR_STATUS:
        assert loaded(modules, package) == [], package


def test_help_loads_none_of_the_agents_code(tmp_path: Path) -> None:
    code, modules, _ = run_cli(tmp_path, "--help")

    assert code == 0
    for package in (*NEVER_FOR_STATUS, "workers.executor", "workers.kernel", "labplan.codec"):
        assert loaded(modules, package) == [], package


def test_installing_a_key_loads_neither_pyroute2_nor_the_executor(tmp_path: Path) -> None:
    code, modules, err = run_cli(tmp_path, "key", "set", stdin="not a key\n")

    assert code == 2 and err.startswith("no key installed:")
    for package in (*NEVER_FOR_STATUS, "workers.executor", "workers.kernel"):
        assert loaded(modules, package) == [], package


@pytest.mark.parametrize("command", ["apply", "exec", "destroy", "sweep", "facts", "agent"])
def test_every_subcommand_still_has_its_help(tmp_path: Path, command: str) -> None:
    code, modules, _ = run_cli(tmp_path, command, "--help")

    assert code == 0
    assert loaded(modules, "pyroute2") == [] and loaded(modules, "celery") == []
