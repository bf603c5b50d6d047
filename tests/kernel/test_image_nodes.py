"""Nodes of an OCI image, on the real kernel: the image's config as Docker applies it, one
unpacked copy shared read-only by every node of the image, each with a writable layer of
its own, the image's files owned by the node's uids (never the host's), and a pull that
fails before any kernel object is made. The image comes from tests.imagekit (busybox
from the host, built offline) loaded into the executor's store; each lab is destroyed by
the `build` fixture, which proves by listing the kernel that nothing of it is left."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from labplan import naming
from tests.imagekit import build_busybox_image
from workers.errors import ApplyError
from workers.init.build import lminit_path
from workers.kernel.processes import Processes
from workers.wiring import kernel_executor

from .conftest import Lab, compile_dict, leftovers, new_deployment

REF = "registry.test/kit/box:1"
# What the node's command writes where the test can read it back (/tmp is the node's).
REPORT = "env > /tmp/env.txt; pwd > /tmp/pwd.txt; id -u > /tmp/uid.txt; id -g > /tmp/gid.txt"


@pytest.fixture
def image(data_dir: Path, tmp_path: Path) -> str:
    """The image REF in the store of the executor `build` uses: Cmd reports what the
    command saw, Env, WorkingDir /srv/app and User app (1000:1000)."""
    layout = tmp_path / "layout"
    build_busybox_image(
        layout,
        "1",
        cmd=["/bin/sh", "-c", REPORT + "; exec sleep 3600"],
        env=[("GREETING", "from-image"), ("PATH", "/bin"), ("SHARED", "image")],
        workdir="/srv/app",
        user="app",
        extra_files={"srv/app/README": b"the app\n", "etc/motd": b"image motd\n"},
    )
    archive = tmp_path / "box.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True)
    store = kernel_executor(data_dir).images
    (loaded,) = store.load(archive, REF)
    return loaded.digest


def image_lab(nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "images",
        "nodes": {name: {"image": REF, **spec} for name, spec in nodes.items()},
    }


def wait_for(lab: Lab, node: str, path: str) -> str:
    for _ in range(50):
        done = lab.run(node, "cat", path)
        # The shell makes the file before the command writes it: wait for its line.
        if done.returncode == 0 and done.stdout.endswith("\n"):
            return done.stdout
        subprocess.run(["sleep", "0.1"], check=True)
    raise AssertionError(f"{node} never wrote {path}")


def layer(lab: Lab, node: str) -> Path:
    files = Processes(lminit_path(lab.executor.data_dir), lab.executor.data_dir)
    return files.layer_dir(lab.token, lab.cgroup(node)) / "upper"


def test_the_images_cmd_env_workdir_and_user_apply_as_docker_applies_them(
    build: Any, image: str
) -> None:
    lab: Lab = build(image_lab({"box": {"environment": {"SHARED": "labfile", "EXTRA": "x"}}}))

    env = set(wait_for(lab, "box", "/tmp/env.txt").splitlines())

    assert {"GREETING=from-image", "SHARED=labfile", "EXTRA=x", "PATH=/bin"} <= env
    assert wait_for(lab, "box", "/tmp/pwd.txt") == "/srv/app\n"
    assert wait_for(lab, "box", "/tmp/uid.txt") == "1000\n"
    assert wait_for(lab, "box", "/tmp/gid.txt") == "1000\n"
    assert lab.result.images == {REF: image}


def test_the_labfiles_command_workdir_and_user_replace_the_images(build: Any, image: str) -> None:
    lab: Lab = build(
        image_lab(
            {
                "box": {
                    "command": ["/bin/sh", "-c", REPORT + "; exec sleep 3600"],
                    "workdir": "/etc",
                    "user": "0:0",
                }
            }
        )
    )

    assert wait_for(lab, "box", "/tmp/pwd.txt") == "/etc\n"
    assert wait_for(lab, "box", "/tmp/uid.txt") == "0\n"


def test_an_entrypoint_given_replaces_the_images_and_clears_its_cmd(build: Any, image: str) -> None:
    lab: Lab = build(
        image_lab({"box": {"entrypoint": ["/bin/sh", "-c", "echo $0 > /tmp/args; sleep 3600"]}})
    )

    # Docker's rule: a new entrypoint runs without the image's Cmd, so $0 is sh's own.
    assert wait_for(lab, "box", "/tmp/args") == "/bin/sh\n"


def test_two_nodes_share_one_read_only_copy_and_each_writes_only_its_own_layer(
    build: Any, image: str, data_dir: Path
) -> None:
    store = kernel_executor(data_dir).images
    tree = store.get(image)
    assert tree is not None
    before = hashlib.sha256((tree.rootfs / "etc/motd").read_bytes()).hexdigest()
    lab: Lab = build(image_lab({"a": {"user": "0"}, "b": {"user": "0"}}))

    wrote = lab.run("a", "sh", "-c", "echo tenant >> /etc/motd && touch /etc/mark && rm /bin/ls")

    assert wrote.returncode == 0, wrote.stderr
    assert lab.run("a", "cat", "/etc/motd").stdout == "image motd\ntenant\n"
    assert lab.run("b", "cat", "/etc/motd").stdout == "image motd\n"
    assert lab.run("b", "ls", "/etc/mark").returncode != 0
    assert lab.run("b", "ls", "/srv/app").stdout == "README\n"
    # The store's copy is as it was; neither layer holds a copy of the image.
    assert hashlib.sha256((tree.rootfs / "etc/motd").read_bytes()).hexdigest() == before
    assert (tree.rootfs / "bin/ls").is_symlink()
    assert not (layer(lab, "b") / "bin").exists()
    assert not (layer(lab, "a") / "srv").exists()
    assert [i["digest"] for i in store.images()] == [image]


def test_the_images_files_belong_to_the_nodes_uids_and_none_to_the_hosts(
    build: Any, image: str, data_dir: Path
) -> None:
    lab: Lab = build(image_lab({"box": {"user": "0"}}))
    record = lab.executor.journal.read(lab.token)
    assert record is not None
    base = record.uid_bases["box"]

    inside = lab.run("box", "stat", "-c", "%u:%g %n", "/bin/busybox", "/srv/app", "/etc/passwd")
    lab.run("box", "/bin/sh", "-c", "touch /made && chown 1000:1000 /srv/app/README")

    assert inside.stdout.splitlines() == ["0:0 /bin/busybox", "0:0 /srv/app", "0:0 /etc/passwd"]
    # On the host, what the node made or changed belongs to its range, never to host uids.
    upper = layer(lab, "box")
    assert (upper / "made").stat().st_uid == base
    assert (upper / "srv/app/README").stat().st_uid == base + 1000
    # The store itself is root's alone: no host user reaches the unpacked trees.
    store_root = kernel_executor(data_dir).images.get(image)
    assert store_root is not None
    assert all(
        p.stat().st_mode & 0o077 == 0
        for p in store_root.rootfs.parents
        if p.is_relative_to(data_dir) and p != data_dir
    )


def test_a_node_of_an_image_cannot_read_the_hosts_secrets(build: Any, image: str) -> None:
    lab: Lab = build(image_lab({"box": {"user": "0"}}))

    shadow = lab.run("box", "cat", "/etc/shadow")
    escape = lab.run("box", "cat", "/proc/1/root/etc/shadow")
    mknod = lab.run("box", "/bin/sh", "-c", "mknod /dev/sda1x b 8 1 && cat /dev/sda1x | wc -c")

    assert shadow.returncode != 0 and "root:" not in shadow.stdout
    assert escape.returncode != 0 and "root:" not in escape.stdout
    assert mknod.returncode != 0


def test_a_missing_image_fails_the_deploy_before_any_kernel_object_naming_node_and_image(
    data_dir: Path,
) -> None:
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    executor = kernel_executor(data_dir)
    lab = {
        "labfile": 1,
        "name": "missing",
        "networks": {"lan": {"subnet": "10.231.0.0/24"}},
        "nodes": {"r1": {"image": "127.0.0.1:9/kit/nowhere:1", "networks": {"lan": {}}}},
    }

    with pytest.raises(ApplyError) as refused:
        executor.apply(compile_dict(lab, deployment), "local")

    assert "node r1" in str(refused.value)
    assert "127.0.0.1:9/kit/nowhere:1" in str(refused.value)
    assert leftovers(token) == []
    assert executor.journal.read(token) is None


def test_destroy_leaves_no_mount_and_keeps_the_image_for_the_next_lab(
    build: Any, image: str, data_dir: Path
) -> None:
    lab: Lab = build(image_lab({"a": {}, "b": {}}))

    lab.executor.destroy(lab.token)

    mounts = Path("/proc/self/mountinfo").read_text()
    assert lab.token not in mounts
    assert kernel_executor(data_dir).images.get(image) is not None
