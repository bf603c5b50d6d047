"""Labfile 2: a lab's volumes and its nodes' mounts: validated by field, exported as
written, compiled to one volume per host that mounts it and each node's mounts, and what
a plain user may not deploy named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labplan import features, labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.features import VOLUMES
from labplan.ops import CreateVolume, SpawnNode
from labplan.render import render_plan

SHARED: dict[str, Any] = {
    "labfile": 2,
    "name": "shared",
    "volumes": {"data": {"size": "64M"}, "spare": {}},
    "nodes": {
        "web": {
            "mounts": [
                {"volume": "data", "path": "/srv/www", "readonly": True},
                {"host": "/srv/course", "path": "/course"},
            ]
        },
        "app": {"mounts": [{"volume": "data", "path": "/var/lib/app"}]},
    },
}


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def with_mount(**mount: Any) -> dict[str, Any]:
    document = copy.deepcopy(SHARED)
    document["nodes"]["app"]["mounts"] = [mount]
    return document


def test_volumes_and_mounts_are_read_and_exported_as_written() -> None:
    lab = labfile.validate(SHARED)

    assert [(v.name, v.size) for v in lab.volumes] == [("data", 64 << 20), ("spare", 256 << 20)]
    web = lab.node("web")
    assert [(m.source, m.path, m.readonly) for m in web.mounts] == [
        ("volume data", "/srv/www", True),
        ("host /srv/course", "/course", False),
    ]
    document = labfile.dump(lab)
    assert document["volumes"] == {"data": {"size": "64M"}, "spare": {"size": "256M"}}
    assert document["nodes"]["app"]["mounts"] == [
        {"volume": "data", "path": "/var/lib/app", "readonly": False}
    ]
    assert labfile.validate(document) == lab
    assert labfile.load(labfile.dumps(lab)) == lab


def test_labfile_1_has_neither() -> None:
    old = copy.deepcopy(SHARED)
    old["labfile"] = 1
    found = errors(old)
    assert any(e.startswith("volumes:") and "labfile 2" in e for e in found)
    assert any(e.startswith("nodes.app.mounts:") and "labfile 2" in e for e in found)


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        (
            {"volume": "dta", "path": "/x"},
            "nodes.app.mounts.0.volume: the lab has no volume 'dta' (volumes: data, spare); "
            "declare it under volumes",
        ),
        (
            {"path": "/x"},
            "nodes.app.mounts.0: a mount needs a source: volume (a volume of the lab) or host "
            "(a host path)",
        ),
        (
            {"volume": "data", "host": "/srv", "path": "/x"},
            "nodes.app.mounts.0: a mount has one source: a volume or a host path, not both",
        ),
        ({"volume": "data"}, "nodes.app.mounts.0.path: path is required"),
        ({"volume": "data", "path": "x"}, 'nodes.app.mounts.0.path: "x" is not an absolute path'),
        (
            {"volume": "data", "path": "/srv/../etc"},
            'nodes.app.mounts.0.path: "/srv/../etc" contains a .. component',
        ),
        (
            {"volume": "data", "path": "/srv//www/"},
            "nodes.app.mounts.0.path: /srv//www/ is not written plainly: write /srv/www",
        ),
        (
            {"volume": "data", "path": "/proc/sys"},
            "nodes.app.mounts.0.path: /proc/sys is in the node's /proc, which the kernel fills",
        ),
        (
            {"volume": "data", "path": "/etc/hosts"},
            "nodes.app.mounts.0.path: /etc/hosts is the node's own",
        ),
        ({"volume": "data", "path": "/"}, "nodes.app.mounts.0.path: / is the node's own"),
        (
            {"host": "/srv/a:b", "path": "/x"},
            "nodes.app.mounts.0.host: '/srv/a:b' has a ':' or a control character",
        ),
        (
            {"volume": "data", "path": "/x", "readonly": "yes"},
            "nodes.app.mounts.0.readonly:",
        ),
        ({"volume": "data", "path": "/x", "size": "1G"}, "nodes.app.mounts.0.size:"),
    ],
)
def test_a_bad_mount_is_refused_by_its_field(mount: dict[str, Any], message: str) -> None:
    found = errors(with_mount(**mount))
    assert any(e.startswith(message) for e in found), found


def test_two_mounts_on_one_path_and_odd_volumes_are_refused() -> None:
    document = copy.deepcopy(SHARED)
    document["nodes"]["app"]["mounts"].append({"volume": "spare", "path": "/var/lib/app"})
    document["volumes"]["tiny"] = {"size": "4K"}
    document["volumes"]["huge"] = {"size": "64G"}
    document["volumes"]["Bad_Name"] = {}
    found = errors(document)
    assert "nodes.app.mounts.1.path: mount 0 of app is already on /var/lib/app" in found
    assert any(e.startswith("volumes.tiny.size:") for e in found)
    assert any(e.startswith("volumes.huge.size:") for e in found)
    assert any(e.startswith("volumes.Bad_Name:") for e in found)


def test_a_node_without_its_own_mount_namespace_has_no_mounts() -> None:
    document = copy.deepcopy(SHARED)
    document["nodes"]["app"].update(privileged=True, namespaces={"mnt": False})
    assert any(
        e.startswith("nodes.app.mounts: app has no mount namespace of its own")
        for e in errors(document)
    )


def test_a_volume_belongs_to_one_host() -> None:
    document = copy.deepcopy(SHARED)
    document["nodes"]["web"]["host"] = "h1"
    document["nodes"]["app"]["host"] = "h2"
    assert (
        "nodes.app.mounts.0.volume: volume data is on host h1 with web: a volume is a "
        "directory of one host, so app cannot have it on h2" in errors(document)
    )


def test_a_host_path_is_an_admins_alone() -> None:
    needs = labfile.admin_requirements(labfile.validate(SHARED))
    assert [(e.path, e.message) for e in needs] == [
        (
            "nodes.web.mounts.1.host",
            "only an admin may mount a path of the host (/srv/course) into a node; use a "
            "volume of the lab",
        )
    ]
    plain = copy.deepcopy(SHARED)
    del plain["nodes"]["web"]["mounts"][1]
    assert labfile.admin_requirements(labfile.validate(plain)) == []


def test_each_host_gets_the_volumes_its_nodes_mount_before_they_start() -> None:
    document = copy.deepcopy(SHARED)
    plan = compile_plan(labfile.validate(document), deployment=5)
    (host,) = plan.hosts
    volumes = [op for op in host.ops if isinstance(op, CreateVolume)]
    assert volumes == [CreateVolume("data", 64 << 20)]  # spare: no node mounts it
    spawns = {op.node: op for op in host.ops if isinstance(op, SpawnNode)}
    assert spawns["web"].mounts == (
        ("volume", "data", "/srv/www", "ro"),
        ("host", "/srv/course", "/course", "rw"),
    )
    assert host.ops.index(volumes[0]) < min(host.ops.index(op) for op in spawns.values())
    text = render_plan(plan)
    assert "mount -t tmpfs -o size=67108864,mode=0755 lmvol /run/labmgr/volumes/data" in text
    assert "mount -o bind,nosuid,nodev,ro /run/labmgr/volumes/data /srv/www" in text


def test_nodes_sharing_a_volume_are_placed_on_one_host() -> None:
    lab = labfile.validate(SHARED)
    with pytest.raises(LabfileError) as caught:
        compile_plan(lab, deployment=5, placement={"web": "h1", "app": "h2"})
    assert "nodes.web.mounts.0.volume: volume data is on host h2 with app" in str(caught.value)


def test_a_host_whose_tmpfs_takes_no_idmapping_is_refused_the_volumes() -> None:
    plan = compile_plan(labfile.validate(SHARED), deployment=5)
    (host,) = plan.hosts
    facts = {"user_namespaces": True, "link_kinds": ["veth", "bridge"]}
    assert VOLUMES in features.missing(facts, host)
    assert VOLUMES not in features.missing({**facts, "idmapped_tmpfs": True}, host)
