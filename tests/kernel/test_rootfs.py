"""A node's root filesystem: the host's tree under a private writable layer, which a
user-namespaced node's root can write (an idmapped lower layer) without ever writing the
host's files, and a given directory pivoted into. Each lab is destroyed by the `build`
fixture, which proves by listing the kernel that nothing of it is left."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workers.facts import Facts
from workers.init.build import lminit_path
from workers.kernel import processes
from workers.kernel.processes import Processes

from .conftest import Lab
from .test_node_options import one_node, tiny_root, uids

MOTD = Path("/etc/motd")
TOOLS = Path("/usr/local/bin")


def layer(lab: Lab, node: str) -> Path:
    """The node's writable layer as the host sees it."""
    files = Processes(lab.executor.data_dir / "bin" / "lminit", lab.executor.data_dir)
    return files.layer_dir(lab.token, lab.cgroup(node)) / "upper"


def node_log(lab: Lab, node: str) -> str:
    files = Processes(lab.executor.data_dir / "bin" / "lminit", lab.executor.data_dir)
    return files.log_path(lab.cgroup(node)).read_text()


def host_mounts_of(token: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if token in line]


@pytest.fixture
def idmapped(facts: Facts) -> None:
    if not facts.idmapped_rootfs:
        pytest.skip("this host cannot idmap its root filesystem under an overlay (facts)")


@pytest.fixture
def motd() -> bytes | None:
    """The host's /etc/motd before the test, to compare after."""
    return MOTD.read_bytes() if MOTD.exists() else None


def test_root_in_a_user_namespaced_node_writes_its_own_copy_of_the_host_tree(
    build: Any, idmapped: None, motd: bytes | None
) -> None:
    lab: Lab = build(one_node({}, "writable"))
    tool = TOOLS / f"lmtool-{lab.token}"

    done = lab.run("box", "sh", "-c", f"echo x > {MOTD} && touch {tool} && cat {MOTD} && id -u")

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["x", "0"]
    assert lab.run("box", "cat", str(MOTD)).stdout == "x\n"  # kept for later commands
    # The host's tree is untouched: only the node's layer holds the changes.
    assert (MOTD.read_bytes() if MOTD.exists() else None) == motd
    assert not tool.exists()


def test_the_host_tree_reads_as_owned_by_the_nodes_root_and_its_root_is_not_the_hosts(
    build: Any, idmapped: None
) -> None:
    lab: Lab = build(one_node({}, "owners"))

    owners = lab.run("box", "stat", "-c", "%u:%g %n", "/", "/etc/passwd", "/usr/bin", "/run")

    assert owners.stdout.splitlines() == ["0:0 /", "0:0 /etc/passwd", "0:0 /usr/bin", "0:0 /run"]
    assert lab.run("box", "touch", "/run/service.pid").returncode == 0
    base = uids(lab.pid("box"))[0]
    assert base >= processes.UID_FIRST
    assert uids(lab.pid("box")) == [base] * 4


def test_files_a_node_writes_are_owned_on_disk_by_its_mapped_uid(
    build: Any, idmapped: None
) -> None:
    lab: Lab = build(one_node({}, "ondisk"))
    base = uids(lab.pid("box"))[0]
    tool = TOOLS / f"lmtool-{lab.token}"

    done = lab.run("box", "sh", "-c", f"touch {tool} && echo changed >> {MOTD}")

    assert done.returncode == 0, done.stderr
    upper = layer(lab, "box")
    created, copied = upper / tool.relative_to("/"), upper / MOTD.relative_to("/")
    assert (created.stat().st_uid, created.stat().st_gid) == (base, base)
    assert (copied.stat().st_uid, copied.stat().st_gid) == (base, base)
    assert copied.read_text().endswith("changed\n")


def test_a_nodes_layer_and_mounts_are_gone_after_destroy(build: Any, idmapped: None) -> None:
    lab: Lab = build(one_node({}, "gone"))
    assert lab.run("box", "touch", "/etc/lm-written").returncode == 0
    upper = layer(lab, "box")
    assert (upper / "etc" / "lm-written").exists()

    lab.executor.destroy(lab.token)

    assert not upper.exists()
    assert not (lab.executor.data_dir / "run" / lab.token).exists()
    assert host_mounts_of(lab.token) == []
    assert not Path("/etc/lm-written").exists()


def test_two_nodes_have_separate_layers(build: Any, idmapped: None) -> None:
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


def test_without_idmapped_layers_the_tree_stays_read_only_and_the_node_says_why(
    build: Any, monkeypatch: pytest.MonkeyPatch, motd: bytes | None
) -> None:
    monkeypatch.setattr(processes, "IDMAPPED_ROOTFS", False)
    lab: Lab = build(one_node({}, "readonly"))

    done = lab.run("box", "sh", "-c", f"echo x > {MOTD}")

    assert done.returncode != 0
    assert "Permission denied" in done.stderr
    assert lab.run("box", "sh", "-c", "echo x > /tmp/scratch && cat /tmp/scratch").stdout == "x\n"
    why = "the host's tree is read-only to this node: idmapped layers are turned off"
    assert why in node_log(lab, "box")
    assert [(n.name, n.note) for n in lab.result.nodes] == [("box", why)]  # in the result
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


def test_the_probe_says_why_a_root_filesystem_that_cannot_be_idmapped_stays_read_only(
    data_dir: Path,
) -> None:
    """lminit's probe pivoted onto a ramfs root, which has no idmapped mounts."""
    if shutil.which("unshare") is None or shutil.which("pivot_root") is None:
        pytest.skip("needs unshare(1) and pivot_root(8) from util-linux")
    lminit = lminit_path(data_dir)
    script = (
        'set -e; root="$1"; mount -t ramfs lmprobe "$root"; mkdir "$root/proc" "$root/scratch"'
        ' "$root/old"; cp "$2" "$root/lminit"; mount --bind "$root" "$root";'
        ' mount -t proc proc "$root/proc"; cd "$root"; pivot_root . old;'
        " exec /lminit probe --scratch /scratch --uid-base 100000"
    )
    root = data_dir / "ramfs-root"
    root.mkdir()

    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", root, lminit],
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout == (
        "idmapped mount of the host's root filesystem (mount_setattr): Invalid argument\n"
    )
    assert str(root) not in Path("/proc/self/mounts").read_text()
