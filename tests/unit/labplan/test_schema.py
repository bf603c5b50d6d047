"""The JSON Schema agrees with the validator: same keys, and valid labfiles pass it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from labfile_strategies import labfiles

from labplan.errors import LabfileError
from labplan.fields import (
    ATTACHMENT,
    IO_THROTTLE,
    LABFILE,
    LIMITS,
    LINK,
    MOUNT,
    NAMESPACES,
    NETWORK,
    NODE,
    ROUTE,
    SHAPING,
    VOLUME,
    ObjectSpec,
)
from labplan.labfile import dump, validate
from labplan.schema import json_schema

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SCHEMA = json_schema()
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)

# The keys docs/labfile.md documents, object by object: the contract both must follow.
DOCUMENTED = {
    "labfile": [
        "labfile",
        "name",
        "description",
        "networks",
        "nodes",
        "links",
        "volumes",
        "scenarios",
    ],
    "network": [
        "driver",
        "subnet",
        "subnet6",
        "gateway",
        "gateway6",
        "internal",
        "mtu",
        "impairments",
        "shaping",
        "parent",
        "mode",
        "vni",
        "vlan_filtering",
        "id",
    ],
    "shaping": ["rate", "delay", "jitter", "loss", "duplicate", "corrupt", "reorder"],
    "node": [
        "host",
        "hostname",
        "rootfs",
        "image",
        "entrypoint",
        "command",
        "workdir",
        "user",
        "environment",
        "limits",
        "namespaces",
        "privileged",
        "networks",
        "sysctls",
        "mounts",
        "network_mode",
        "routes",
        "exec",
    ],
    "limits": ["cpus", "cpu_weight", "memory", "memory_swap", "pids", "io_weight", "io"],
    "io": ["device", "rbps", "wbps", "riops", "wiops"],
    "namespaces": ["mnt", "uts", "ipc", "pid", "cgroup", "user"],
    "attachment": ["ipv4", "ipv6", "ifname", "mac", "impairments", "vlan", "vlans"],
    "route": ["dst", "via"],
    "mount": ["volume", "host", "path", "readonly"],
    "volume": ["size"],
    "link": [
        "type",
        "endpoints",
        "ipv4",
        "ipv6",
        "mtu",
        "host_ifname",
        "network",
        "remote",
        "vni",
        "port",
        "parent",
        "impairments",
    ],
}


def schema_objects() -> dict[str, dict[str, Any]]:
    top = SCHEMA
    network = top["properties"]["networks"]["additionalProperties"]
    node = top["properties"]["nodes"]["additionalProperties"]
    limits = node["properties"]["limits"]
    return {
        "labfile": top,
        "network": network,
        "shaping": network["properties"]["shaping"],
        "node": node,
        "limits": limits,
        "io": limits["properties"]["io"]["items"],
        "namespaces": node["properties"]["namespaces"],
        "attachment": node["properties"]["networks"]["additionalProperties"],
        "route": node["properties"]["routes"]["items"],
        "link": top["properties"]["links"]["items"],
        "mount": node["properties"]["mounts"]["items"],
        "volume": top["properties"]["volumes"]["additionalProperties"],
    }


SPECS: dict[str, ObjectSpec] = {
    "labfile": LABFILE,
    "network": NETWORK,
    "shaping": SHAPING,
    "node": NODE,
    "limits": LIMITS,
    "io": IO_THROTTLE,
    "namespaces": NAMESPACES,
    "attachment": ATTACHMENT,
    "route": ROUTE,
    "link": LINK,
    "mount": MOUNT,
    "volume": VOLUME,
}


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_schema_and_validator_know_the_documented_keys(name: str) -> None:
    schema = schema_objects()[name]
    assert list(schema["properties"]) == DOCUMENTED[name]
    assert list(SPECS[name].names) == DOCUMENTED[name]
    assert schema["additionalProperties"] is False


def test_the_example_of_the_format_passes_the_schema(campus_yaml: str) -> None:
    assert list(VALIDATOR.iter_errors(yaml.safe_load(campus_yaml))) == []


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_example_passes_the_schema(example: Path) -> None:
    assert [e.message for e in VALIDATOR.iter_errors(yaml.safe_load(example.read_text()))] == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("networks", "lan", "colour"), "red"),
        (("networks", "lan", "mode"), "bridge"),
        (("networks", "wan", "mode"), "l2"),
        (("networks", "lan", "mtu"), 40),
        (("nodes", "web", "limits", "memory"), "12Q"),
        (("nodes", "web", "networks", "lan", "ifname"), "lo"),
        (("labfile",), 3),
        (("links",), [{"endpoints": ["web:eth1"]}]),
        (("links",), [{"endpoints": ["web:eth1", "db:eth1"], "ipv4": ["10.1.2.1"]}]),
    ],
)
def test_the_schema_refuses_what_the_validator_refuses(
    campus_yaml: str, path: tuple[str, ...], value: object
) -> None:
    document = yaml.safe_load(campus_yaml)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(VALIDATOR.iter_errors(document)) != []
    with pytest.raises(LabfileError):
        validate(document)


def test_a_bridge_network_without_driver_key_still_needs_a_subnet() -> None:
    document = {"labfile": 1, "name": "x", "networks": {"lan": {}}}
    assert [e.message for e in VALIDATOR.iter_errors(document)] == [
        "'subnet' is a required property"
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labfiles())
def test_generated_labfiles_and_their_exports_pass_the_schema(tree: dict[str, Any]) -> None:
    assert list(VALIDATOR.iter_errors(tree)) == []
    assert list(VALIDATOR.iter_errors(dump(validate(tree)))) == []


def image_lab(**node: object) -> dict[str, Any]:
    return {"labfile": 1, "name": "x", "nodes": {"web": node}}


@pytest.mark.parametrize(
    "node",
    [
        {"image": "alpine"},
        {"image": "registry.example:5000/team/router:v1@sha256:" + "ab" * 32},
        {"image": "alpine", "entrypoint": ["/bin/sh", "-c"], "command": ["true"]},
        {"image": "alpine", "user": "app:staff", "workdir": "/srv"},
        {"rootfs": "host", "user": "1000"},
    ],
)
def test_the_schema_takes_nodes_of_an_image_and_a_user(node: dict[str, object]) -> None:
    document = image_lab(**node)
    assert [e.message for e in VALIDATOR.iter_errors(document)] == []
    assert list(VALIDATOR.iter_errors(dump(validate(document)))) == []


@pytest.mark.parametrize(
    "node",
    [
        {"image": "alpine", "rootfs": "host"},
        {"entrypoint": ["/bin/sh"]},
        {"image": "alpine", "entrypoint": "/bin/sh -c"},
        {"image": "alpine 3"},
        {"image": ""},
        {"image": "alpine", "user": "two words"},
        {"image": "alpine", "user": "a:b:c"},
        {"user": 1000},
    ],
)
def test_the_schema_refuses_the_image_keys_the_validator_refuses(node: dict[str, object]) -> None:
    document = image_lab(**node)
    assert list(VALIDATOR.iter_errors(document)) != []
    with pytest.raises(LabfileError):
        validate(document)
