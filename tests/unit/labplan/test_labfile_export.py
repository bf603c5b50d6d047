"""The export: every default shown, stable under re-validation, YAML and JSON."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from labfile_strategies import labfiles

from labplan.labfile import dump, dumps, load, validate


def test_the_export_shows_every_default(tree: dict[str, Any]) -> None:
    tree["networks"]["host"] = {"driver": "host"}
    tree["nodes"]["probe"] = {"networks": {"host": {}}}
    document = dump(validate(tree))
    assert document["networks"]["dmz"] == {
        "driver": "bridge",
        "subnet": "10.20.0.0/24",
        "gateway": "10.20.0.1",
        "internal": False,
        "mtu": 1500,
    }
    assert document["networks"]["host"] == {"driver": "host"}
    assert document["nodes"]["web"] == {
        "hostname": "web",
        "rootfs": "host",
        "command": [],
        "workdir": "/",
        "environment": {},
        "limits": {},
        "namespaces": {
            "mnt": True,
            "uts": True,
            "ipc": True,
            "pid": True,
            "cgroup": True,
            "user": True,
        },
        "privileged": False,
        "networks": {"lan": {"ipv4": "10.10.0.3", "ifname": "eth0", "mac": "02:42:0a:0a:00:03"}},
        "routes": [{"dst": "0.0.0.0/0", "via": "10.10.0.1"}],
    }
    assert document["nodes"]["probe"]["networks"] == {"host": {}}
    assert document["nodes"]["probe"]["routes"] == []


def test_the_export_keeps_the_key_order_of_the_format(campus_yaml: str) -> None:
    document = dump(load(campus_yaml))
    assert list(document) == ["labfile", "name", "description", "networks", "nodes"]
    assert list(document["networks"]["lan"]) == [
        "driver",
        "subnet",
        "gateway",
        "internal",
        "mtu",
        "shaping",
    ]
    assert list(document["networks"]["wan"]) == ["driver", "subnet", "mtu", "parent", "mode"]
    assert list(document["nodes"]["web"])[:3] == ["host", "hostname", "rootfs"]


def test_the_export_normalises_units_and_gateway_none(tree: dict[str, Any]) -> None:
    tree["networks"]["lan"].update(
        gateway="none", shaping={"rate": 10_000_000, "delay": "1000us", "loss": 1}
    )
    tree["nodes"]["web"]["limits"] = {"memory": 268435456, "memory_swap": "0K", "cpus": 2}
    document = dump(validate(tree))
    assert document["networks"]["lan"]["gateway"] == "none"
    assert document["networks"]["lan"]["shaping"] == {
        "rate": "10mbit",
        "delay": "1ms",
        "loss": "1%",
    }
    assert document["nodes"]["web"]["limits"] == {"cpus": 2, "memory": "256M", "memory_swap": 0}


def test_an_overlay_without_a_vni_exports_none() -> None:
    lab = load("labfile: 1\nname: o\nnetworks:\n  core: {driver: overlay, subnet: 10.0.0.0/24}\n")
    assert "vni" not in dump(lab)["networks"]["core"]


def test_dumps_writes_block_yaml_without_aliases(campus_yaml: str) -> None:
    lab = load(campus_yaml)
    text = dumps(lab)
    assert "&" not in text and "*" not in text and "{" not in text
    assert text.startswith("labfile: 1\nname: campus\n")
    assert yaml.safe_load(text) == dump(lab)


def test_dumps_writes_indented_json(campus_yaml: str) -> None:
    lab = load(campus_yaml)
    text = dumps(lab, fmt="json")
    assert text.startswith('{\n  "labfile": 1,\n  "name": "campus",')
    assert json.loads(text) == dump(lab)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labfiles())
def test_an_export_validates_back_to_the_same_export(tree: dict[str, Any]) -> None:
    exported = dump(validate(tree))
    assert dump(validate(exported)) == exported


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labfiles())
def test_yaml_and_json_exports_load_back_to_the_same_lab(tree: dict[str, Any]) -> None:
    lab = validate(tree)
    assert load(dumps(lab, "yaml")) == lab
    assert load(dumps(lab, "json")) == lab
