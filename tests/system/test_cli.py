"""The `labmgr` command against the whole stack, as a user drives it from a terminal
(logged in: the server and a token in its environment): deploy a file with its steps
shown live, inspect the running lab, run a command and an interactive shell (a real pty
on both ends) in a node, read its logs, and destroy it, nothing left in the kernel.
Another user's token opens no shell in it."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import yaml

from tests.system.conftest import BIN, Stack, wait_for
from tests.system.test_live_deployments import TWO_NODES, kernel_objects

LABMGR = str(BIN / "labmgr")


def cli_env(stack: Stack, home: Path, who: str = "alice") -> dict[str, str]:
    """The command's environment as a user's who has logged in: the server and the user's
    token (`labmgr login` would issue a fresh one, and the other tests hold this one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABMGR_")}
    return {
        **env,
        "LABMGR_CONFIG": str(home / "credentials.json"),
        "LABMGR_SERVER": stack.base,
        "LABMGR_TOKEN": stack.personas[who].token,
        "LABMGR_USER": who,
    }


def labmgr(
    env: dict[str, str], *argv: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LABMGR, *argv], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def shell_session(
    env: dict[str, str], lab: str, node: str, typed: bytes, until: bytes
) -> tuple[int, bytes]:
    """`labmgr shell` on a pty of its own, as in a terminal: what it shows once `until`
    appeared and the shell was left, and its exit status."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [LABMGR, "shell", lab, node], env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    sent = False
    try:
        while time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(leader, 4096)
                except OSError:
                    break
            if seen and not sent:  # the node's shell said its prompt: type
                os.write(leader, typed)
                sent = True
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    assert until in seen, seen
    return code, seen


def test_a_user_drives_a_lab_from_the_terminal(stack: Stack, tmp_path: Path) -> None:
    env = cli_env(stack, tmp_path)

    tree = {**TWO_NODES, "name": "cli-pair"}
    tree["networks"] = {"lan": {"driver": "bridge", "subnet": "10.213.80.0/24"}}
    labfile = tmp_path / "cli-pair.yaml"
    labfile.write_text(yaml.safe_dump(tree))
    deployed = labmgr(env, "deploy", str(labfile))
    status = json.loads(labmgr(env, "status", "cli-pair", "--format", "json").stdout or "{}")
    if status.get("token"):
        stack.tokens.append(status["token"])
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    lines = deployed.stdout.splitlines()
    assert lines[0].startswith("Created lab ") and lines[0].endswith(f"cli-pair, from {labfile}")
    assert any("] " in line for line in lines[2:-1])  # its steps, as they came
    assert lines[-1] == f"deployment {status['id']}: running"

    inspected = labmgr(env, "inspect", "cli-pair")
    assert inspected.returncode == 0
    assert f"deployment:  {status['id']}, running on {stack.host}" in inspected.stdout
    assert "eth0: 10.213.80.2/24" in inspected.stdout

    ran = labmgr(env, "exec", "cli-pair", "alice", "--", "hostname")
    assert (ran.returncode, ran.stdout) == (0, "alice\n")

    code, seen = shell_session(
        env, "cli-pair", "bob", b"echo answer-$((6*7)); exit\n", b"answer-42"
    )
    assert code == 0, seen

    logs = labmgr(env, "logs", "cli-pair")
    assert logs.returncode == 0
    assert logs.stdout.splitlines()[-1] == f"deployment {status['id']}: running"

    # Charlie's token opens no shell in alice's lab, and is told so in words.
    charlie = cli_env(stack, tmp_path, "charlie")
    refused = labmgr(charlie, "shell", str(status["lab"]), "bob")
    assert refused.returncode == 1
    assert "not found" in refused.stderr.lower()  # not even that the lab exists
    nosuch = labmgr(env, "shell", "cli-pair", "nosuch")
    assert nosuch.returncode == 1
    assert nosuch.stderr == (
        "labmgr: node: 'nosuch' of 'cli-pair' has no terminal for you: the lab is not "
        "running, it has no such node, or it is not yours.\n"
    )

    destroyed = labmgr(env, "destroy", "cli-pair")
    assert destroyed.returncode == 0, destroyed.stderr
    assert destroyed.stdout.splitlines()[-1] == f"deployment {status['id']}: destroyed"
    wait_for("the kernel to hold nothing of the lab", lambda: not kernel_objects(status["token"]))
