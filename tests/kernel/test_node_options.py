"""Node options beyond the defaults: a root tree of its own, privileged nodes, a
namespace turned off, block I/O throttles. Each lab is destroyed by the `build` fixture,
which proves by listing the kernel that nothing of it is left."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workers.kernel.cgroups import Cgroups

from .conftest import Lab

SHELL = "/bin/sh"


def one_node(node: dict[str, Any], name: str = "opts") -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": name,
        "networks": {"isolated": {"driver": "none"}},
        "nodes": {"box": {"networks": {"isolated": {}}, **node}},
    }


def libraries(binary: str) -> list[str]:
    """The shared objects `binary` loads, as absolute paths (from ldd)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            found.append(path)
    return found


def tiny_root(directory: Path) -> Path:
    """A root tree holding just a shell, its libraries, the mount points the node's
    init needs, and a marker file."""
    shell = os.path.realpath(SHELL)
    for source in [shell, *libraries(shell)]:
        target = directory / source.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (directory / "bin").mkdir(exist_ok=True)
    if not (directory / SHELL.lstrip("/")).exists():
        (directory / SHELL.lstrip("/")).symlink_to(shell)
    for mount_point in ("proc", "sys", "dev", "tmp", "run", "etc"):
        (directory / mount_point).mkdir()
    (directory / "marker").write_text("tiny root\n")
    # The node's root is an unprivileged uid outside: it must be able to walk the tree.
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    return directory


def test_a_node_with_a_root_directory_sees_that_tree_as_its_root(
    build: Any, tmp_path: Path
) -> None:
    tree = tiny_root(tmp_path / "tree")
    lab: Lab = build(one_node({"rootfs": str(tree)}, "tinyroot"))

    # Shell builtins only: the tree holds no other program.
    script = "read line < /marker; echo $line; for f in /root /var /etc/passwd /etc/hosts; do"
    script += " [ -e $f ] && echo $f; done"
    inside = lab.run("box", SHELL, "-c", script)

    assert all(Path(f).exists() for f in ("/root", "/var", "/etc/passwd"))
    assert inside.stdout.splitlines() == ["tiny root", "/etc/hosts"]  # none of the host's
    host_mounts = Path("/proc/self/mounts").read_text()
    assert str(tree) not in host_mounts  # the node's mounts stay in its own namespace


def uids(pid: int) -> list[int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return [
        int(u) for u in next(s for s in status.splitlines() if s.startswith("Uid:")).split()[1:]
    ]


def test_a_privileged_node_without_a_user_namespace_is_root_outside_too(build: Any) -> None:
    lab: Lab = build(one_node({"privileged": True, "namespaces": {"user": False}}, "priv"))

    assert lab.run("box", "id", "-u").stdout.strip() == "0"
    assert uids(lab.pid("box")) == [0, 0, 0, 0]
    assert os.readlink(f"/proc/{lab.pid('box')}/ns/user") == os.readlink("/proc/self/ns/user")


def test_a_node_without_its_own_uts_namespace_shares_the_hosts(build: Any) -> None:
    host_name = socket.gethostname()
    lab: Lab = build(one_node({"privileged": True, "namespaces": {"uts": False}}, "nouts"))

    pid = lab.pid("box")
    assert os.readlink(f"/proc/{pid}/ns/uts") == os.readlink("/proc/self/ns/uts")
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert lab.run("box", "hostname").stdout.strip() == host_name
    assert socket.gethostname() == host_name


def root_disk() -> str | None:
    """MAJOR:MINOR of the whole disk holding the root filesystem, None if "/" is on no
    block device (an overlay or a tmpfs)."""
    source = next(
        (
            line.split()[0]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1] == "/"
        ),
        "",
    )
    block = Path("/sys/class/block") / Path(source).name
    if not source.startswith("/dev/") or not block.exists():
        return None
    if (block / "partition").exists():
        block = block.resolve().parent  # a partition's directory sits in its disk's
    return (block / "dev").read_text().strip()


def test_an_io_throttle_lands_in_the_nodes_cgroup(build: Any) -> None:
    device = root_disk()
    if device is None:
        pytest.skip("the root filesystem is on no block device")
    throttle = {"device": device, "rbps": "10M", "wiops": 300}
    lab: Lab = build(one_node({"limits": {"io": [throttle]}}, "iolimit"))

    cgroups = Cgroups()
    if cgroups.layout.mode == "v2":
        io_max = cgroups.read(lab.cgroup("box"), "io.max") or ""
        assert f"{device} rbps=10485760 wbps=max riops=max wiops=300" in io_max
    else:
        reads = cgroups.read(lab.cgroup("box"), "blkio.throttle.read_bps_device") or ""
        writes = cgroups.read(lab.cgroup("box"), "blkio.throttle.write_iops_device") or ""
        assert reads.split() == [device, "10485760"]
        assert writes.split() == [device, "300"]
