"""A node's root filesystem: the host's tree under a private writable layer, and a given
directory pivoted into. A user-namespaced node is an unprivileged user of the host's tree
(host files read as the overflow uid and keep their modes) whose root owns only what its
layer gives it: its "/", its /etc and /var directories (not the host files in them), an
empty /root. Each lab is destroyed by the `build` fixture, which proves by listing the
kernel that nothing of it is left."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from workers.init.build import lminit_path
from workers.kernel import processes
from workers.kernel.processes import Processes

from .conftest import Lab
from .test_node_options import one_node, tiny_root, uids

MOTD = Path("/etc/motd")
TOOLS = Path("/usr/local/bin")
OVERFLOW = "65534:65534"  # how a user namespace shows ids it does not map


def layer(lab: Lab, node: str) -> Path:
    """The node's writable layer as the host sees it."""
    files = Processes(lminit_path(lab.executor.data_dir), lab.executor.data_dir)
    return files.layer_dir(lab.token, lab.cgroup(node)) / "upper"


def host_mounts_of(token: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if token in line]


@pytest.fixture
def motd() -> bytes | None:
    """The host's /etc/motd before the test, to compare after."""
    return MOTD.read_bytes() if MOTD.exists() else None


def test_the_host_tree_reads_as_owned_by_the_overflow_uid_and_the_nodes_root_is_not_the_hosts(
    build: Any,
) -> None:
    lab: Lab = build(one_node({}, "owners"))

    owners = lab.run("box", "stat", "-c", "%u:%g %n", "/etc/passwd", "/usr/bin", "/etc/shadow")
    own = lab.run("box", "stat", "-c", "%u:%g %a %n", "/", "/etc", "/root", "/run", "/etc/hosts")

    assert owners.stdout.splitlines() == [
        f"{OVERFLOW} /etc/passwd",
        f"{OVERFLOW} /usr/bin",
        f"{OVERFLOW} /etc/shadow",
    ]
    assert own.stdout.splitlines() == [
        f"0:0 {os.stat('/').st_mode & 0o7777:o} /",
        f"0:0 {os.stat('/etc').st_mode & 0o7777:o} /etc",
        "0:0 700 /root",
        "0:0 755 /run",
        "0:0 644 /etc/hosts",
    ]
    base = uids(lab.pid("box"))[0]
    assert base >= processes.UID_FIRST
    assert uids(lab.pid("box")) == [base] * 4


def test_root_in_a_user_namespaced_node_writes_its_own_layer_but_no_host_file(
    build: Any, motd: bytes | None
) -> None:
    lab: Lab = build(one_node({}, "writable"))
    top, tool = Path(f"/lmtop-{lab.token}"), TOOLS / f"lmtool-{lab.token}"

    refused = lab.run("box", "sh", "-c", f"echo x >> {MOTD}; touch {tool}")
    own = lab.run(
        "box",
        "sh",
        "-c",
        f"mkdir {top} && echo mine > {top}/f && cat {top}/f"
        f" && rm {MOTD} && echo x > {MOTD} && cat {MOTD}"
        " && echo hi > /root/.profile && cat /root/.profile && touch /run/service.pid"
        " && echo '10.9.9.9 extra' >> /etc/hosts && tail -n1 /etc/hosts",
    )

    assert refused.stderr.count("Permission denied") == 2
    assert (own.returncode, own.stderr) == (0, "")
    assert own.stdout.splitlines() == ["mine", "x", "hi", "10.9.9.9 extra"]
    assert lab.run("box", "cat", str(MOTD)).stdout == "x\n"  # kept for later commands
    # The host's tree is untouched: only the node's layer holds the changes.
    assert (MOTD.read_bytes() if MOTD.exists() else None) == motd
    assert not top.exists() and not tool.exists()


def test_files_a_node_writes_are_owned_on_disk_by_its_mapped_uid(build: Any) -> None:
    lab: Lab = build(one_node({}, "ondisk"))
    base = uids(lab.pid("box"))[0]

    done = lab.run("box", "sh", "-c", f"mkdir /lmdir && rm {MOTD} && echo changed > {MOTD}")

    assert done.returncode == 0, done.stderr
    upper = layer(lab, "box")
    created, replaced = upper / "lmdir", upper / MOTD.relative_to("/")
    assert (created.stat().st_uid, created.stat().st_gid) == (base, base)
    assert (replaced.stat().st_uid, replaced.stat().st_gid) == (base, base)
    assert replaced.read_text() == "changed\n"


def test_a_nodes_layer_and_mounts_are_gone_after_destroy(build: Any) -> None:
    lab: Lab = build(one_node({}, "gone"))
    assert lab.run("box", "touch", "/etc/lm-written").returncode == 0
    upper = layer(lab, "box")
    assert (upper / "etc" / "lm-written").exists()

    lab.executor.destroy(lab.token)

    assert not upper.exists()
    assert not (lab.executor.data_dir / "run" / lab.token).exists()
    assert host_mounts_of(lab.token) == []
    assert not Path("/etc/lm-written").exists()


def test_two_nodes_have_separate_layers(build: Any) -> None:
    lab: Lab = build(
        {
            "labfile": 1,
            "name": "layers",
            "networks": {"isolated": {"driver": "none"}},
            "nodes": {"a": {"networks": {"isolated": {}}}, "b": {"networks": {"isolated": {}}}},
        }
    )

    assert lab.run("a", "sh", "-c", "echo from-a > /etc/lm-mine").returncode == 0

    assert lab.run("a", "cat", "/etc/lm-mine").stdout == "from-a\n"
    assert lab.run("b", "cat", "/etc/lm-mine").returncode != 0


def test_a_privileged_node_without_a_user_namespace_writes_its_own_layer_too(
    build: Any, motd: bytes | None
) -> None:
    lab: Lab = build(one_node({"privileged": True, "namespaces": {"user": False}}, "privlayer"))

    done = lab.run("box", "sh", "-c", f"echo x > {MOTD} && cat {MOTD}")

    assert (done.returncode, done.stdout) == (0, "x\n")
    assert (MOTD.read_bytes() if MOTD.exists() else None) == motd


def test_a_user_namespaced_node_pivots_into_a_given_directory(build: Any, tmp_path: Path) -> None:
    tree = tiny_root(tmp_path / "tree")
    lab: Lab = build(one_node({"rootfs": str(tree)}, "pivot"))

    inside = lab.run("box", "/bin/sh", "-c", "read line < /marker; echo $line; echo x > /marker")

    assert inside.stdout.splitlines() == ["tiny root"]
    assert "/marker" in inside.stderr  # the tree belongs to host root, not the node's
    assert (tree / "marker").read_text() == "tiny root\n"
    assert uids(lab.pid("box"))[0] >= processes.UID_FIRST
    assert os.readlink(f"/proc/{lab.pid('box')}/ns/user") != os.readlink("/proc/self/ns/user")
    assert os.stat(f"/proc/{lab.pid('box')}/root/marker").st_ino == (tree / "marker").stat().st_ino
