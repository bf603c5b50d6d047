"""The host's image store against a real registry (Debian's docker-registry on loopback,
started by each test) with images the tests build offline from busybox: pulls by tag and
by digest, a tag present not asked again, mirrors, insecure registries, logins, a
corrupt layer refused with nothing kept, `docker save` and OCI archives loaded, removal
and garbage collection, and nothing left in the store's work directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labplan.messages import RegistryLogin
from tests.imagekit import Registry, build_busybox_image, debian_mirror_answers
from workers.images.store import ImageError, ImageStore, PullProgress
from workers.images.users import resolve_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the store unpacks as root")


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return build_busybox_image(
        tmp_path / "layout",
        "1",
        cmd=["/bin/sh", "-c", "echo hello"],
        env=[("PATH", "/bin"), ("GREETING", "hi")],
        workdir="/srv/app",
        user="app",
        extra_files={"etc/motd": b"box one\n"},
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "registry") as served:
        yield served


def store_for(tmp_path: Path, **how: object) -> ImageStore:
    return ImageStore(tmp_path / "agent" / "images", **how)  # type: ignore[arg-type]


def assert_clean(store: ImageStore) -> None:
    assert store.leftovers() == []


def test_a_pull_by_tag_unpacks_the_image_with_its_config_and_the_registrys_digest(
    tmp_path: Path, layout: Path, registry: Registry
) -> None:
    ref = registry.push(layout, "1", "kit/box")
    store = store_for(tmp_path, insecure=[registry.address])
    seen: list[PullProgress] = []

    image = store.ensure(ref, progress=seen.append)

    assert image.digest == registry.digest("kit/box", "1")
    assert image.config.cmd == ("/bin/sh", "-c", "echo hello")
    assert dict(image.config.env) == {"PATH": "/bin", "GREETING": "hi"}
    assert (image.config.workdir, image.config.user) == ("/srv/app", "app")
    assert (image.rootfs / "etc/motd").read_text() == "box one\n"
    assert (image.rootfs / "bin/busybox").stat().st_uid == 0
    assert resolve_user(image.rootfs, image.config.user) == (1000, 1000)
    assert seen[0].text.startswith("0/1 layers")
    assert any(p.text.startswith("1/1 layers") for p in seen)
    [fact] = store.images()
    assert fact["refs"] == [ref] and fact["digest"] == image.digest and fact["size"] > 0
    assert oct(store.root.stat().st_mode & 0o777) == "0o700"
    assert_clean(store)


def test_a_tag_present_is_not_asked_again_and_a_digest_pins_the_image(
    tmp_path: Path, layout: Path, registry: Registry
) -> None:
    ref = registry.push(layout, "1", "kit/box")
    store = store_for(tmp_path, insecure=[registry.address])
    first = store.ensure(ref)
    registry.__exit__(None, None, None)  # the registry is gone now

    again = store.ensure(ref)
    pinned = store.ensure(ref, first.digest)
    by_digest = store.ensure(f"{registry.address}/kit/box@{first.digest}")

    assert again.digest == pinned.digest == by_digest.digest == first.digest
    with pytest.raises(ImageError) as missing:
        store.ensure(f"{registry.address}/kit/other:1")
    assert f"image {registry.address}/kit/other:1" in str(missing.value)


def test_a_registry_served_over_http_is_refused_unless_named_insecure(
    tmp_path: Path, layout: Path, registry: Registry
) -> None:
    ref = registry.push(layout, "1", "kit/box")

    with pytest.raises(ImageError) as refused:
        store_for(tmp_path).ensure(ref)

    assert str(refused.value).startswith(f"image {ref}: ")
    # On loopback it is refused before any connection: a registry there is the host's own.
    assert "is this host's own (127.0.0.1)" in str(refused.value)
    assert "LABMGR_INSECURE_REGISTRIES" in str(refused.value)
    assert store_for(tmp_path).images() == []


def test_a_pull_never_makes_the_host_connect_to_its_own_services(tmp_path: Path) -> None:
    # What a tenant would name to have root on the host talk to a local service (the
    # broker, a database, metadata): a listener of the test's own stands for it.
    with socket.socket() as service:
        service.bind(("127.0.0.1", 0))
        service.listen()
        service.setblocking(False)
        port = service.getsockname()[1]
        store = store_for(tmp_path)
        refusals = []
        for ref in (f"127.0.0.1:{port}/x:1", f"localhost:{port}/x:1", "169.254.169.254/x:1"):
            with pytest.raises(ImageError) as refused:
                store.ensure(ref)
            refusals.append(str(refused.value))
        with pytest.raises(BlockingIOError):
            service.accept()  # nobody ever connected

    assert all("is this host's own" in r for r in refusals), refusals
    assert store.images() == [] and store.leftovers() == []


def test_a_mirror_serves_the_registry_it_stands_for(
    tmp_path: Path, layout: Path, registry: Registry
) -> None:
    registry.push(layout, "1", "kit/box")
    store = store_for(tmp_path, mirrors={"registry.test": registry.address})

    image = store.ensure("registry.test/kit/box:1")

    assert image.digest == registry.digest("kit/box", "1")
    assert store.images()[0]["refs"] == ["registry.test/kit/box:1"]


def test_a_registry_that_wants_a_login_gets_the_admins_and_refuses_without(
    tmp_path: Path, layout: Path
) -> None:
    with Registry(tmp_path / "private", users={"teacher": "s3cret"}) as private:
        ref = private.push(layout, "1", "course/box")
        store = store_for(tmp_path, insecure=[private.address])
        with pytest.raises(ImageError) as refused:
            store.ensure(ref)
        wrong: RegistryLogin = {"registry": private.address, "username": "teacher", "password": "x"}
        with pytest.raises(ImageError):
            store.ensure(ref, logins=[wrong])
        login: RegistryLogin = {**wrong, "password": "s3cret"}
        image = store.ensure(ref, logins=[login])

    assert "unauthorized" in str(refused.value).lower() or "auth" in str(refused.value).lower()
    assert image.digest.startswith("sha256:")
    # The login lived in a file only as long as the pull.
    assert_clean(store)
    assert not any("s3cret" in p.read_text(errors="replace") for p in store.root.glob("*.*"))


def test_a_layer_whose_bytes_do_not_match_its_digest_is_refused_and_nothing_kept(
    tmp_path: Path, layout: Path, registry: Registry
) -> None:
    ref = registry.push(layout, "1", "kit/box")
    layer = max(registry.blobs(), key=lambda p: p.stat().st_size)  # busybox's layer
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    store = store_for(tmp_path, insecure=[registry.address])

    with pytest.raises(ImageError) as refused:
        store.ensure(ref)

    assert "digest" in str(refused.value).lower()
    assert store.images() == []
    assert list((store.root / "trees").iterdir()) == []
    assert sorted(p.name for p in (store.layout / "blobs/sha256").iterdir()) == []
    assert_clean(store)


def test_docker_save_and_oci_archives_load_under_their_own_or_a_given_name(
    tmp_path: Path, layout: Path
) -> None:
    saved = tmp_path / "saved.tar"
    oci = tmp_path / "oci.tar"
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            f"oci:{layout}:1",
            f"docker-archive:{saved}:kit/saved:2",
        ],
        check=True,
    )
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            f"oci:{layout}:1",
            f"oci-archive:{oci}:1",
        ],
        check=True,
    )
    store = store_for(tmp_path)

    (from_save,) = store.load(saved)
    (from_oci,) = store.load(oci, "registry.test/kit/oci:1")

    assert from_save.ref == "docker.io/kit/saved:2"
    assert (from_save.rootfs / "etc/motd").read_text() == "box one\n"
    assert from_oci.ref == "registry.test/kit/oci:1"
    assert store.lookup("kit/saved:2") == store.lookup("docker.io/kit/saved:2")
    assert {tuple(f["refs"]) for f in store.images()} >= {("registry.test/kit/oci:1",)}
    with pytest.raises(ImageError) as unnamed:
        store.load(oci)
    assert "give it a name" in str(unnamed.value)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not an archive at all")
    with pytest.raises(ImageError) as bad:
        store.load(garbage)
    assert "not a docker save or OCI archive" in str(bad.value)
    assert_clean(store)


def test_removal_keeps_what_deployments_run_and_prune_collects_the_rest(
    tmp_path: Path, layout: Path
) -> None:
    build_busybox_image(layout, "2", cmd=["true"], extra_files={"etc/motd": b"box two\n"})
    store = store_for(tmp_path, cache_max=1)
    (one,) = store.load(_tag(layout, "1", tmp_path), "kit/one:1")
    (two,) = store.load(_tag(layout, "2", tmp_path), "kit/two:1")
    in_use = {one.digest: ["d0000007"]}

    removed, kept = store.remove(["kit/one:1", "kit/nothing:1"], in_use)

    assert removed == []
    assert kept == ["kit/one:1: used by d0000007", "kit/nothing:1: no such image on this host"]
    store.touch(two.digest)
    assert store.prune(in_use, all=False) == ["docker.io/kit/two:1"]  # past the 1-byte bound
    assert [f["digest"] for f in store.images(in_use)] == [one.digest]
    assert store.images(in_use)[0]["tokens"] == ["d0000007"]
    assert store.prune({}, all=True) == ["docker.io/kit/one:1"]
    assert store.images() == []
    assert list((store.root / "trees").iterdir()) == []
    assert list((store.layout / "blobs/sha256").iterdir()) == []
    assert_clean(store)


def _tag(layout: Path, tag: str, tmp_path: Path) -> Path:
    """An OCI archive of one tag of the layout."""
    archive = tmp_path / f"tag-{tag}.tar"
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            f"oci:{layout}:{tag}",
            f"oci-archive:{archive}:{tag}",
        ],
        check=True,
    )
    return archive


def test_a_user_the_image_does_not_name_or_a_link_out_of_the_tree_is_refused(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").symlink_to("/etc/passwd")  # would read the host's

    with pytest.raises(ImageError) as refused:
        resolve_user(root, "root")
    assert "no user 'root'" in str(refused.value)
    assert resolve_user(root, "1000:1000") == (1000, 1000)
    with pytest.raises(ImageError) as outside:
        resolve_user(root, "70000", ids=65536)
    assert "outside the node's 65536 ids" in str(outside.value)


@pytest.mark.skipif(not debian_mirror_answers(), reason="no Debian mirror reachable")
def test_an_image_built_from_debian_packages_runs_from_the_store(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    env = {**os.environ, "LABMGR_AGENT_DATA_DIR": str(data), "PYTHONDONTWRITEBYTECODE": "1"}
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers",
            "image",
            "build",
            "labs/tiny:1",
            "--debian",
            "bookworm",
            "--variant",
            "essential",
            "--packages",
            "netbase",
            "--cmd",
            "/bin/sh",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    listed = subprocess.run(
        [sys.executable, "-m", "workers", "image", "ls", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith("docker.io/labs/tiny:1  sha256:")
    [fact] = json.loads(listed.stdout)
    assert fact["refs"] == ["docker.io/labs/tiny:1"]
    image = ImageStore(data / "images").lookup("labs/tiny:1")
    assert image is not None and image.config.cmd == ("/bin/sh",)
    assert (image.rootfs / "etc/debian_version").read_text().startswith("12")
    assert (image.rootfs / "etc/protocols").exists()  # netbase's
    assert ImageStore(data / "images").leftovers() == []
