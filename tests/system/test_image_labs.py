"""A plain user's lab of image nodes through the whole stack: the image pushed to a real
registry (the stack's agent reaches it as `registry.systest`, through the mirror setting),
the deploy pulling it as its own step with progress, the image's config seen from inside
the node, the digest recorded on the deployment and pinned by a redeploy, the host's
images listed through the API, and nothing left after destroy but the cached image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.imagekit import Registry, build_busybox_image
from tests.system.conftest import Stack, wait_for
from tests.system.test_live_deployments import (
    FINAL,
    deploy,
    destroy_clean,
    kernel_objects,
    lab_from,
    wait_status,
)

IMAGE = "registry.systest/course/box:1"


def run(stack: Stack, deployment: int, node: str, *argv: str) -> dict[str, Any]:
    response = stack.post(
        "alice",
        f"/api/deployments/{deployment}/exec",
        json={"node": node, "argv": list(argv), "timeout": 15},
    )
    assert response.status_code == 200, response.text
    outcome: dict[str, Any] = response.json()
    return outcome


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image IMAGE stands for, in the stack's registry; its digest."""
    layout = tmp_path_factory.mktemp("images") / "layout"
    build_busybox_image(
        layout,
        "1",
        cmd=[
            "/bin/sh",
            "-c",
            "env > /tmp/env; (pwd; id -u) > /tmp/s; mv /tmp/s /tmp/started; exec sleep 3600",
        ],
        env=[("PATH", "/bin"), ("COURSE", "networks-101")],
        workdir="/srv/app",
        user="app",
        extra_files={"srv/app/README": b"lab one\n"},
    )
    registry.push(layout, "1", "course/box")
    return registry.digest("course/box", "1")


def image_lab(stack: Stack) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "sys-images",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.78.0.0/24"}},
        "nodes": {
            name: {"image": IMAGE, "host": stack.host, "networks": {"lan": {}}}
            for name in ("a", "b")
        },
    }


def test_a_plain_users_image_lab_pulls_runs_the_images_config_and_pins_its_digest(
    stack: Stack, pushed: str
) -> None:
    lab = lab_from(stack, image_lab(stack), "sys-images")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    try:
        final = wait_status(stack, deployment, FINAL, timeout=120)
        detail = stack.get("alice", f"/api/deployments/{deployment}/").json()
        assert final == "running", json.dumps(detail)

        pulls = [s for s in detail["steps"] if s["name"] == "pull"]
        assert [p["status"] for p in pulls] == ["succeeded"], detail["steps"]
        assert IMAGE in pulls[0]["target"]
        assert detail["images"] == {IMAGE: pushed}

        # Cmd, WorkingDir and User of the image as the node's command saw them; its Env.
        started = wait_for(
            "the node's command to start",
            lambda: run(stack, deployment, "a", "cat", "/tmp/started")["stdout"],
            timeout=20,
        )
        assert started == "/srv/app\n1000\n"
        env = run(stack, deployment, "a", "cat", "/tmp/env")["stdout"].splitlines()
        assert "COURSE=networks-101" in env
        # What one node writes is its own: the other node of the image does not see it.
        wrote = run(stack, deployment, "a", "sh", "-c", "echo mine > /srv/app/mine")
        assert wrote["exit"] == 0, wrote
        assert run(stack, deployment, "a", "cat", "/srv/app/mine")["stdout"] == "mine\n"
        assert run(stack, deployment, "b", "ls", "/srv/app")["stdout"] == "README\n"
        # The host reports the image, used by this deployment.
        hosts = stack.get("alice", "/api/hosts/").json()["results"]
        host = next(h for h in hosts if h["slug"] == stack.host)

        def listed() -> list[dict[str, Any]]:
            answer = stack.get("alice", f"/api/hosts/{host['id']}/images")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            return list(body["images"] if isinstance(body, dict) else body)

        wait_for(
            "the host to list the image in use",
            lambda: any(i["digest"] == pushed and i.get("deployments") for i in listed()),
            timeout=60,
        )
    finally:
        destroy_clean(stack, lab, token, deployment)
    # One unpacked copy, kept in the cache after the lab is gone; no node layer left.
    trees = Path(stack.env["LABMGR_AGENT_DATA_DIR"]) / "images" / "trees"
    assert [p.name for p in trees.iterdir()] == [pushed.removeprefix("sha256:")]


def test_a_plain_users_image_may_not_point_the_host_at_its_own_broker(stack: Stack) -> None:
    tree = image_lab(stack)
    broker = f"127.0.0.1:{stack.redis_port}/anything:1"
    tree["nodes"] = {"a": {"image": broker, "host": stack.host}}
    lab = lab_from(stack, tree, "sys-images-ssrf")
    body = deploy(stack, lab)

    final = wait_status(stack, body["id"], FINAL, timeout=60)
    detail = stack.get("alice", f"/api/deployments/{body['id']}/").json()

    assert final == "failed", detail
    said = " ".join(str(s["message"]) for s in detail["steps"])
    assert "node a" in said and broker in said and "is this host's own" in said, said
    assert not kernel_objects(body["token"])
