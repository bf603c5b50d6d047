"""Nodes of an OCI image in the labfile: `image`, `entrypoint` and `user`, their errors
(each naming its field, all at once), their normalized form, and what they compile to:
one `pull_image` per image and host, first of all, pinned to a digest when one is known."""

from __future__ import annotations

from typing import Any

import pytest

from labplan import codec, features, imageref, ops
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.labfile import admin_requirements, dump, dumps, load, validate

DIGEST = "sha256:" + "ab" * 32


def lab(**nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "images",
        "networks": {"lan": {"subnet": "10.60.0.0/24"}},
        "nodes": {name: {"networks": {"lan": {}}, **spec} for name, spec in nodes.items()},
    }


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as refused:
        validate(data)
    return [f"{e.path}: {e.message}" for e in refused.value.errors]


def test_an_image_node_keeps_the_canonical_reference_and_leaves_the_rest_to_the_image() -> None:
    parsed = validate(lab(r1={"image": "frrouting/frr:v8.4.1"}))

    [node] = parsed.nodes
    assert node.image == "docker.io/frrouting/frr:v8.4.1"
    assert (node.rootfs, node.command, node.workdir, node.entrypoint, node.user) == (None,) * 5


def test_the_labfiles_entrypoint_command_workdir_and_user_are_kept_as_given() -> None:
    parsed = validate(
        lab(
            box={
                "image": "alpine",
                "entrypoint": ["/bin/sh", "-c"],
                "command": ["sleep 5"],
                "workdir": "/srv",
                "user": "app:staff",
            }
        )
    )

    [node] = parsed.nodes
    assert node.image == "docker.io/library/alpine:latest"
    assert node.entrypoint == ("/bin/sh", "-c") and node.command == ("sleep 5",)
    assert (node.workdir, node.user) == ("/srv", "app:staff")


def test_every_mistake_is_named_at_once() -> None:
    data = lab(
        a={"image": "Not A Ref!", "rootfs": "host"},
        b={"entrypoint": ["/bin/sh"]},
        c={"image": "alpine", "user": "two words"},
        d={"image": "alpine", "privileged": True, "namespaces": {"mnt": False}},
    )

    found = errors_of(data)

    assert any(
        e.startswith("nodes.a.image: 'Not A Ref!' is not a valid image reference") for e in found
    )
    assert "nodes.a.rootfs: a node runs an image or a rootfs, not both: remove one of them" in found
    assert "nodes.b.entrypoint: only a node of an image has an entrypoint (add image:)" in found
    assert any(e.startswith("nodes.c.user: ") for e in found)
    assert (
        "nodes.d.namespaces.mnt: a node of an image needs its mount namespace: its tree is "
        "mounted there"
    ) in found


def test_the_normalized_form_says_only_what_the_labfile_gave_and_loads_back_the_same() -> None:
    parsed = validate(lab(a={"image": "alpine:3.20", "user": "1000"}, b={}))

    text = dumps(parsed)
    again = load(text)

    assert again == parsed
    node_a = next(n for n in again.nodes if n.name == "a")
    assert node_a.image == "docker.io/library/alpine:3.20"
    assert "rootfs" not in text.split("\n  a:\n", 1)[1].split("\n  b:\n", 1)[0]
    assert "image: docker.io/library/alpine:3.20" in text


def test_a_plain_user_may_run_an_image() -> None:
    assert admin_requirements(validate(lab(a={"image": "alpine"}))) == []


def test_each_image_is_pulled_once_per_host_before_anything_else() -> None:
    data = lab(
        a={"image": "alpine", "host": "h1"},
        b={"image": "alpine", "host": "h1"},
        c={"image": "busybox", "host": "h1"},
        d={"image": "alpine", "host": "h2", "networks": {}},
        e={"host": "h2", "networks": {}},
    )

    plan = compile_plan(validate(data), deployment=5)

    h1, h2 = plan.hosts
    pulls = [op for op in h1.ops if isinstance(op, ops.PullImage)]
    assert h1.ops[: len(pulls)] == tuple(pulls)
    assert [p.ref for p in pulls] == [
        "docker.io/library/alpine:latest",
        "docker.io/library/busybox:latest",
    ]
    assert [op for op in h2.ops if isinstance(op, ops.PullImage)] == [
        ops.PullImage("docker.io/library/alpine:latest", None)
    ]
    spawn = next(op for op in h2.ops if isinstance(op, ops.SpawnNode) and op.node == "d")
    assert (spawn.image, spawn.rootfs, spawn.command) == (
        "docker.io/library/alpine:latest",
        None,
        None,
    )
    plain = next(op for op in h2.ops if isinstance(op, ops.SpawnNode) and op.node == "e")
    assert (plain.image, plain.rootfs) == (None, "host")


def test_a_redeploy_pins_the_digests_it_ran_and_a_reference_may_pin_its_own() -> None:
    pinned = f"registry.example:5000/team/router@{DIGEST}"
    data = lab(a={"image": "alpine:3.20"}, b={"image": pinned})

    plan = compile_plan(
        validate(data), deployment=6, images={"docker.io/library/alpine:3.20": DIGEST}
    )

    pulls = {op.ref: op.digest for op in plan.hosts[0].ops if isinstance(op, ops.PullImage)}
    assert pulls == {"docker.io/library/alpine:3.20": DIGEST, pinned: DIGEST}


def test_a_host_without_skopeo_and_umoci_refuses_a_plan_of_images() -> None:
    plan = compile_plan(validate(lab(a={"image": "alpine"})), deployment=7)
    [host] = plan.hosts

    assert features.requirements(host)[0] == features.IMAGE_TOOLS  # pulled first
    assert features.IMAGE_TOOLS in features.missing({"image_tools": False}, host)
    assert features.IMAGE_TOOLS not in features.missing({"image_tools": True}, host)


def test_image_ops_cross_the_boundary_and_older_plans_without_them_still_decode() -> None:
    plan = compile_plan(
        validate(lab(a={"image": "alpine", "entrypoint": ["sh"], "user": "0:0"}, b={})),
        deployment=8,
    )
    data = codec.plan_to_dict(plan)

    assert codec.plan_from_dict(data) == plan
    plain = next(o for o in data["hosts"][0]["ops"] if o.get("node") == "b")
    assert {"image", "entrypoint", "user"}.isdisjoint(plain)  # as an older agent wrote them


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ref": "alpine"}, "is not written canonically"),
        ({"digest": "sha256:12"}, "is not a sha256: digest"),
    ],
)
def test_a_forged_pull_is_refused_naming_the_field(change: dict[str, str], message: str) -> None:
    plan = compile_plan(validate(lab(a={"image": "alpine"})), deployment=9)
    data = codec.plan_to_dict(plan)
    data["hosts"][0]["ops"][0].update(change)

    with pytest.raises(LabfileError) as refused:
        codec.plan_from_dict(data)

    [error] = refused.value.errors
    assert error.path == f"hosts.local.ops.0.{next(iter(change))}"
    assert message in error.message


def test_references_parse_as_docker_reads_them() -> None:
    assert imageref.parse("alpine").canonical == "docker.io/library/alpine:latest"
    assert imageref.parse("localhost/x").registry == "localhost"
    ref = imageref.parse(f"registry.example:5000/team/router:v1@{DIGEST}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "registry.example:5000",
        "team/router",
        "v1",
        DIGEST,
    )
    for bad in ("", "team/UPPER", "a@sha256:xyz", "x:" + "t" * 200):
        with pytest.raises(ValueError):
            imageref.parse(bad)


def test_an_entrypoint_is_a_list_never_a_string_to_split() -> None:
    found = errors_of(lab(a={"image": "alpine", "entrypoint": "/bin/sh -c"}))

    assert found == [
        'nodes.a.entrypoint: "/bin/sh -c" is not a list (write the entrypoint as a list of '
        "arguments, like [/bin/sh, -c])"
    ]


@pytest.mark.parametrize("user", ["root", "0", "1000:1000", "app:staff", "_svc.x-1:0", "a" * 32])
def test_a_user_may_be_a_name_or_number_with_a_group(user: str) -> None:
    [node] = validate(lab(a={"image": "alpine", "user": user})).nodes
    assert node.user == user


@pytest.mark.parametrize("user", ["", "a b", "a:b:c", ":0", "0:", "a" * 33, "1app", "ä", "a\t"])
def test_a_user_of_another_shape_is_refused_at_its_field(user: str) -> None:
    [error] = errors_of(lab(a={"image": "alpine", "user": user}))
    assert error.startswith("nodes.a.user: ") and "is not a valid user" in error


def test_any_node_may_run_as_a_user_and_says_so_in_its_export() -> None:
    parsed = validate(lab(a={"user": "nobody", "command": ["id"]}))

    [node] = parsed.nodes
    assert (node.rootfs, node.command, node.workdir, node.user) == ("host", ("id",), "/", "nobody")
    exported = dump(parsed)["nodes"]["a"]
    assert list(exported)[:5] == ["hostname", "rootfs", "command", "workdir", "user"]
    assert load(dumps(parsed)) == parsed


def test_an_image_nodes_export_holds_only_what_the_labfile_gave() -> None:
    pinned = f"registry.example:5000/team/router@{DIGEST}"
    parsed = validate(lab(a={"image": pinned}, b={"image": "alpine", "entrypoint": []}))

    a, b = dump(parsed)["nodes"]["a"], dump(parsed)["nodes"]["b"]

    assert {"rootfs", "command", "workdir", "entrypoint", "user"}.isdisjoint(a)
    assert a["image"] == pinned
    assert (b["image"], b["entrypoint"]) == ("docker.io/library/alpine:latest", [])
    assert load(dumps(parsed)) == parsed


def test_an_image_node_given_every_key_exports_them_in_the_documented_order() -> None:
    parsed = validate(
        lab(
            a={
                "user": "app",
                "workdir": "/srv",
                "command": ["x"],
                "entrypoint": ["/e"],
                "image": "alpine",
                "hostname": "box",
            }
        )
    )

    keys = list(dump(parsed)["nodes"]["a"])

    assert keys[:6] == ["hostname", "image", "entrypoint", "command", "workdir", "user"]
