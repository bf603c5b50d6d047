"""Volumes and host mounts (labfile 2 `volumes`, `mounts`) on the real kernel: two
user-namespaced nodes share a volume, each seeing it as its own root's; a read-only mount
stays read-only to the node's root; files outlive a redeploy that remakes the node, and go
with a redeploy that drops the volume and with the destroy; a mount path that leads
through a link of the tree (/var/run -> /run) is refused without touching the host."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from labplan import naming
from labplan.features import VOLUMES
from workers.errors import ApplyError, RefusedError
from workers.facts import probe
from workers.wiring import kernel_executor

from .conftest import Lab, compile_dict, leftovers, new_deployment
from .test_redeploy import Redeploys, _result

SHARED: dict[str, Any] = {
    "labfile": 2,
    "name": "shared",
    "volumes": {"data": {"size": "8M"}},
    "nodes": {
        "a": {"mounts": [{"volume": "data", "path": "/srv/data"}]},
        "b": {
            "mounts": [
                {"volume": "data", "path": "/var/lib/data"},
                {"volume": "data", "path": "/ro", "readonly": True},
            ]
        },
    },
}


def _volume(data_dir: Path, token: str, name: str) -> Path:
    return data_dir / "run" / token / "volumes" / name


def test_two_nodes_share_a_volume_each_as_its_own_root(build: Any, data_dir: Path) -> None:
    lab = build(SHARED)

    written = lab.run(
        "a", "sh", "-c", "echo hello > /srv/data/note && stat -c %u:%g /srv/data/note"
    )
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == "0:0"  # a's root owns what it wrote
    seen = lab.run("b", "sh", "-c", "cat /var/lib/data/note && stat -c %u:%g /var/lib/data/note")
    assert seen.stdout.split() == ["hello", "0:0"]  # ... and so does b's root
    # On the host it is a file of root's in a directory only root reaches, not a file of
    # either node's outside uids.
    on_host = _volume(data_dir, lab.token, "data") / "note"
    assert on_host.read_text() == "hello\n"
    assert (on_host.stat().st_uid, on_host.stat().st_gid) == (0, 0)
    assert os.stat(on_host.parent.parent).st_mode & 0o077 == 0
    # 8M is the volume's bound.
    full = lab.run("a", "sh", "-c", "dd if=/dev/zero of=/srv/data/big bs=1M count=16")
    assert full.returncode != 0 and "No space left" in full.stderr

    # Read-only to b's root, which cannot remount it writable either.
    refused = lab.run("b", "sh", "-c", "echo x > /ro/other")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    remount = lab.run("b", "mount", "-o", "remount,bind,rw", "/ro")
    assert remount.returncode != 0
    assert lab.run("b", "sh", "-c", "echo x > /ro/other").returncode != 0
    assert not (on_host.parent / "other").exists()


def test_files_outlive_a_redeploy_and_go_with_the_volume(data_dir: Path) -> None:
    run = Redeploys(data_dir)
    volume = _volume(data_dir, run.token, "data")
    try:
        before = run.apply(SHARED, "v1")
        (volume / "kept").write_text("kept\n")

        changed = copy.deepcopy(SHARED)
        changed["nodes"]["a"]["environment"] = {"REMADE": "1"}  # a is made again
        changed["volumes"]["data"]["size"] = "16M"
        after = run.apply(changed, "v2", previous=compile_dict(SHARED, run.deployment))
        assert after["a"]["pid"] != before["a"]["pid"]
        assert (volume / "kept").read_text() == "kept\n"
        lab = Lab(run.executor, run.token, _result(run.executor, run.token))
        assert lab.run("a", "cat", "/srv/data/kept").stdout == "kept\n"
        assert os.statvfs(volume).f_blocks * os.statvfs(volume).f_frsize == 16 << 20

        dropped = copy.deepcopy(changed)
        del dropped["volumes"]
        for node in dropped["nodes"].values():
            del node["mounts"]
        run.apply(dropped, "v3", previous=compile_dict(changed, run.deployment))
        assert not volume.exists()
    finally:
        run.executor.destroy(run.token)
    assert leftovers(run.token) == []
    assert not (data_dir / "run" / run.token).exists()


def test_a_mount_through_a_link_of_the_tree_is_refused_and_the_host_untouched(
    data_dir: Path,
) -> None:
    assert os.path.islink("/var/run")  # Debian's link to /run, in every host-tree node
    lab = copy.deepcopy(SHARED)
    lab["nodes"]["a"]["mounts"] = [{"volume": "data", "path": "/var/run/lm-escape"}]
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    executor = kernel_executor(data_dir)

    with pytest.raises(ApplyError) as failed:
        executor.apply(compile_dict(lab, deployment), "local")

    assert "the node's /var/run/lm-escape leads through a symbolic link" in str(failed.value)
    assert not os.path.exists("/run/lm-escape")
    executor.destroy(token)
    assert leftovers(token) == []


def test_this_hosts_tmpfs_takes_an_idmapping() -> None:
    # What the control plane checks before it sends a plan with volumes (labplan.features).
    assert probe().idmapped_tmpfs


@pytest.mark.vm
@pytest.mark.vm_only
def test_a_kernel_whose_tmpfs_takes_no_idmapping_refuses_volumes_before_anything(
    data_dir: Path,
) -> None:
    assert not probe().idmapped_tmpfs, "the VM tier's kernel (Debian's 6.1) has no idmapped tmpfs"
    deployment = new_deployment()
    token = naming.deployment_token(deployment)

    with pytest.raises(RefusedError) as refused:
        kernel_executor(data_dir).apply(compile_dict(SHARED, deployment), "local")

    assert refused.value.missing == [VOLUMES]
    assert leftovers(token) == []
    assert not (data_dir / "run" / token).exists()
