"""The ops of nodes of an OCI image as they cross to the agent: `pull_image` and a spawn's
`image`, `entrypoint` and `user` round-trip through the codec (plans written before them
still decode), what an agent must not be told is refused naming the field, a host without
skopeo and umoci is told so, and the rendered plan says what the host does."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from labplan import features
from labplan.codec import plan_from_dict, plan_to_dict
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.labfile import validate
from labplan.ops import Plan, PullImage, SpawnNode
from labplan.render import render_op, render_plan

DIGEST = "sha256:" + "ab" * 32
ALPINE = "docker.io/library/alpine:3.20"


def plain_plan() -> Plan:
    lab = {
        "labfile": 1,
        "name": "images",
        "networks": {"lan": {"subnet": "10.60.0.0/24"}},
        "nodes": {"a": {"networks": {"lan": {}}}, "b": {"networks": {"lan": {}}}},
    }
    return compile_plan(validate(lab), deployment=3)


def image_plan(**spawn: Any) -> Plan:
    """The plain plan with node a running `ALPINE` (and `spawn`'s fields), pulled first."""
    plan = plain_plan()
    [host] = plan.hosts
    ops = tuple(
        replace(op, **{"rootfs": None, "command": None, "workdir": None, "image": ALPINE, **spawn})
        if isinstance(op, SpawnNode) and op.node == "a"
        else op
        for op in host.ops
    )
    return replace(plan, hosts=(replace(host, ops=(PullImage(ALPINE, None), *ops)),))


def spawn_of(plan: Plan, node: str) -> SpawnNode:
    return next(o for o in plan.hosts[0].ops if isinstance(o, SpawnNode) and o.node == node)


def refusals(data: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as refused:
        plan_from_dict(data)
    return [f"{e.path}: {e.message}" for e in refused.value.errors]


# -- the codec ------------------------------------------------------------------------


def test_a_plan_of_images_survives_the_codec() -> None:
    plan = image_plan(entrypoint=("/bin/sh", "-c"), command=("sleep 9",), user="app:staff")

    data = plan_to_dict(plan)

    assert data["hosts"][0]["ops"][0] == {"op": "pull_image", "ref": ALPINE, "digest": None}
    spawn = next(o for o in data["hosts"][0]["ops"] if o.get("node") == "a")
    assert spawn["image"] == ALPINE and spawn["rootfs"] is None and spawn["workdir"] is None
    assert (spawn["entrypoint"], spawn["command"], spawn["user"]) == (
        ["/bin/sh", "-c"],
        ["sleep 9"],
        "app:staff",
    )
    assert plan_from_dict(data) == plan
    pinned = replace(plan, hosts=(replace(plan.hosts[0], ops=(PullImage(ALPINE, DIGEST),)),))
    assert plan_from_dict(plan_to_dict(pinned)) == pinned


def test_a_spawn_without_an_image_is_written_as_before_and_a_user_is_kept() -> None:
    plan = plain_plan()
    data = plan_to_dict(plan)
    spawn = next(o for o in data["hosts"][0]["ops"] if o.get("node") == "a")

    assert {"image", "entrypoint", "user"}.isdisjoint(spawn)
    assert plan_from_dict(data) == plan

    with_user = replace(
        plan, hosts=(replace(plan.hosts[0], ops=(replace(spawn_of(plan, "a"), user="1000"),)),)
    )
    assert plan_from_dict(plan_to_dict(with_user)) == with_user


def test_a_plan_an_older_control_plane_wrote_still_decodes() -> None:
    # What the journal holds from before images: a spawn has none of their fields.
    data = plan_to_dict(plain_plan())
    for op in data["hosts"][0]["ops"]:
        for key in ("image", "entrypoint", "user"):
            op.pop(key, None)

    spawn = spawn_of(plan_from_dict(data), "a")

    assert (spawn.image, spawn.entrypoint, spawn.user, spawn.rootfs) == (None, None, None, "host")


@pytest.mark.parametrize(
    ("node", "change", "error"),
    [
        ("a", {"rootfs": "/srv/x"}, "rootfs: a node has a rootfs or an image, one of them"),
        ("b", {"rootfs": None}, "rootfs: a node has a rootfs or an image, one of them"),
        ("b", {"command": None}, "command: only a node of an image leaves its command to it"),
        ("b", {"entrypoint": ["sh"]}, "entrypoint: only a node of an image has an entrypoint"),
        ("a", {"user": "two words"}, "user: 'two words' is not a user"),
        ("a", {"user": "a:b:c"}, "user: 'a:b:c' is not a user"),
        ("a", {"image": "alpine"}, "image: 'alpine' is not written canonically"),
        ("a", {"entrypoint": "sh -c"}, "entrypoint: "),
        ("a", {"workdir": "srv"}, "workdir: "),
    ],
)
def test_a_forged_spawn_is_refused_naming_the_field(
    node: str, change: dict[str, Any], error: str
) -> None:
    data = plan_to_dict(image_plan())
    ops = data["hosts"][0]["ops"]
    index = next(i for i, o in enumerate(ops) if o.get("node") == node)
    ops[index].update(change)

    found = refusals(data)

    assert any(e.startswith(f"hosts.local.ops.{index}") and error in e for e in found), found


def test_an_image_node_without_its_mount_namespace_is_refused() -> None:
    plan = image_plan()
    data = plan_to_dict(plan)
    ops = data["hosts"][0]["ops"]
    spawn = next(o for o in ops if o.get("node") == "a")
    spawn.update(privileged=True, namespaces=["uts", "ipc", "pid", "cgroup"])

    assert any("a node of an image needs its mount namespace" in e for e in refusals(data))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"ref": "docker.io/library/alpine"}, "is not written canonically"),
        ({"ref": 7}, "is not an image reference"),
        ({"digest": "sha256:12"}, "is not a sha256: digest"),
        ({"digest": "md5:" + "0" * 32}, "is not a sha256: digest"),
    ],
)
def test_a_forged_pull_is_refused_naming_the_field(change: dict[str, Any], error: str) -> None:
    data = plan_to_dict(image_plan())
    data["hosts"][0]["ops"][0].update(change)

    [found] = refusals(data)

    assert found.startswith(f"hosts.local.ops.0.{next(iter(change))}: ")
    assert error in found


def test_a_pull_with_a_missing_field_is_refused() -> None:
    data = plan_to_dict(image_plan())
    del data["hosts"][0]["ops"][0]["digest"]

    assert any(e.startswith("hosts.local.ops.0") for e in refusals(copy.deepcopy(data)))


# -- features -------------------------------------------------------------------------


def test_a_host_without_skopeo_and_umoci_is_told_before_anything_is_made() -> None:
    [host] = image_plan().hosts

    assert features.requirements(host)[0] == "images (skopeo and umoci)"
    lacking = features.missing({"image_tools": False}, host)
    having = features.missing({"image_tools": True}, host)

    assert "images (skopeo and umoci)" in lacking and "images (skopeo and umoci)" not in having
    assert "images (skopeo and umoci)" not in features.requirements(plain_plan().hosts[0])


# -- rendering ------------------------------------------------------------------------


def test_a_pull_renders_as_the_stores_copy_and_unpacking() -> None:
    assert render_op(PullImage(ALPINE, None)) == [
        "IMAGE_ALPINE_3_20=$(skopeo inspect --format '{{.Digest}}' "
        "docker://docker.io/library/alpine:3.20 | cut -c8-)",
        "skopeo copy docker://docker.io/library/alpine@sha256:$IMAGE_ALPINE_3_20 "
        "oci:/var/lib/labmgr-agent/images/layout:$IMAGE_ALPINE_3_20",
        "umoci raw unpack --image /var/lib/labmgr-agent/images/layout:$IMAGE_ALPINE_3_20 "
        "/var/lib/labmgr-agent/images/trees/$IMAGE_ALPINE_3_20/rootfs",
    ]


def test_a_pinned_pull_copies_that_digest_whatever_the_tag() -> None:
    ref = f"registry.example:5000/team/router:v1@{DIGEST}"

    lines = render_op(PullImage(ref, DIGEST))

    assert lines[0] == f"IMAGE_REGISTRY_EXAMPLE_5000_TEAM_ROUTER_V1={'ab' * 32}"
    assert lines[1].startswith(
        "skopeo copy docker://registry.example:5000/team/router@sha256:"
        "$IMAGE_REGISTRY_EXAMPLE_5000_TEAM_ROUTER_V1 "
    )


def test_a_node_of_an_image_renders_in_the_images_tree_with_what_the_image_gives() -> None:
    text = render_plan(image_plan())

    assert text.index("# images: ") < text.index("# network namespaces")
    [line] = [x for x in text.splitlines() if "lm3/n0/cgroup.procs" in x]
    assert '--root="/var/lib/labmgr-agent/images/trees/${IMAGE_ALPINE_3_20}/rootfs"' in line
    assert "--wd='<image WorkingDir>'" in line
    assert line.endswith("init '<image Entrypoint>' '<image Cmd>') &")


@pytest.mark.parametrize(
    ("spawn", "argv"),
    [
        ({"command": ("ls", "-l")}, "'<image Entrypoint>' ls -l"),
        ({"entrypoint": ("/bin/sh", "-c")}, "/bin/sh -c"),  # Docker: no image Cmd then
        ({"entrypoint": ("sh",), "command": ()}, "sh"),
        ({"entrypoint": (), "command": ()}, "sleep infinity"),
        ({"entrypoint": (), "workdir": "/srv"}, "'<image Cmd>'"),
    ],
)
def test_what_the_labfile_gives_replaces_the_images_own(spawn: dict[str, Any], argv: str) -> None:
    line = render_op(spawn_of(image_plan(**spawn), "a"))[-1]

    assert line.endswith(f"init {argv}) &")
    assert ("--wd=/srv" in line) == ("workdir" in spawn)


def test_a_nodes_user_is_switched_to_inside_its_tree() -> None:
    named = render_op(spawn_of(image_plan(user="app"), "a"))[-1]
    numeric = render_op(replace(spawn_of(plain_plan(), "b"), user="1000:1000"))[-1]

    assert 'setpriv --reuid=app --regid="$(id -g app || echo 0)" --clear-groups "$@"' in named
    assert 'exec setpriv --reuid=1000 --regid=1000 --clear-groups "$@"' in numeric
