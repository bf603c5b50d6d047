"""The labfile's JSON Schema (draft 2020-12), generated from `labplan.fields`, the tables
the validator itself uses.

The schema is for editors and API clients: it catches unknown keys, wrong types, bad
patterns, ranges and options given for the wrong driver. Rules that relate two parts of
the document (overlapping subnets, addresses inside subnets, parents) are the validator's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labplan.drivers import DRIVERS
from labplan.fields import (
    IFNAME_PATTERN,
    LABFILE,
    LINK,
    MAC_PATTERN,
    NETWORK,
    NO_DEFAULT,
    NODE,
    REQUIRED,
    Field,
    ObjectSpec,
)
from labplan.link_rules import PORT_KEYS
from labplan.model import LABFILE_VERSIONS
from labplan.units import PERCENT_PATTERN, RATE_PATTERN, SIZE_PATTERN, TIME_PATTERN

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_CIDR = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$"
_NAME = r"^[a-z][a-z0-9-]{0,30}$"
_CIDR6 = r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$"
IMAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$"
_DEFAULT_DRIVER = NETWORK.get("driver").default  # type: ignore[union-attr]

Schema = dict[str, Any]


def json_schema() -> Schema:
    """The JSON Schema of a labfile, versions 1 and 2 (a version 1 file that uses a
    key of version 2 is the validator's to refuse)."""
    schema = {"$schema": DIALECT, "title": "labmgr labfile, versions 1 and 2"}
    schema.update(_object(LABFILE))
    return schema


def _object(spec: ObjectSpec) -> Schema:
    schema: Schema = {
        "type": "object",
        "description": spec.description,
        "properties": {f.name: _field(f) for f in spec.fields},
        "additionalProperties": False,
    }
    required = [f.name for f in spec.fields if f.required]
    if required:
        schema["required"] = required
    if spec is NETWORK:
        schema["allOf"] = [_driver_rules(driver) for driver in DRIVERS]
    if spec is NODE:
        schema.update(_NODE_RULES)
    if spec is LINK:
        schema["allOf"] = _LINK_RULES
    return schema


# A veth link has two endpoints and none of the keys of a link of one endpoint, whose
# type's keys are its own; a vxlan link names its remote and VNI, a network link its
# network.
_PORT_REQUIRED = {"vxlan": ["remote", "vni"], "network": ["network"]}
_LINK_RULES: list[Schema] = [
    {
        "if": {"properties": {"type": {"const": "veth"}}},
        "then": {
            "properties": {"endpoints": {"minItems": 2}},
            "not": {"anyOf": [{"required": [key]} for key in PORT_KEYS]},
        },
        "else": {"properties": {"endpoints": {"maxItems": 1}}},
    },
    *(
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {
                "not": {
                    "anyOf": [
                        {"required": [k]} for k, owners in PORT_KEYS.items() if kind not in owners
                    ]
                },
                **({"required": _PORT_REQUIRED[kind]} if kind in _PORT_REQUIRED else {}),
            },
        }
        for kind in ("dummy", "host", "vxlan", "network")
    ),
]


# A node runs an image or a rootfs, not both; only a node of an image has an entrypoint.
_NODE_RULES: Schema = {
    "not": {"required": ["image", "rootfs"]},
    "dependentRequired": {"entrypoint": ["image"]},
}


def _field(field: Field) -> Schema:
    schema = dict(_KINDS[field.kind](field))
    schema["description"] = field.description
    if field.default not in (REQUIRED, NO_DEFAULT):
        default = field.default
        schema["default"] = list(default) if isinstance(default, tuple) else default
    return schema


def _driver_rules(driver: str) -> Schema:
    """Options that do not belong to `driver` are refused; what it needs is required."""
    when: Schema = {"properties": {"driver": {"const": driver}}}
    if driver != _DEFAULT_DRIVER:
        when["required"] = ["driver"]
    then: Schema = {
        "properties": {
            f.name: False
            for f in NETWORK.fields
            if f.drivers is not None and driver not in f.drivers
        }
    }
    if modes := DRIVERS[driver].modes:
        then["properties"]["mode"] = {"enum": list(modes)}
    if required := DRIVERS[driver].required:
        then["required"] = list(required)
    return {"if": when, "then": then}


def _range(field: Field, schema: Schema) -> Schema:
    if field.minimum is not None:
        key = "exclusiveMinimum" if field.exclusive_minimum else "minimum"
        schema[key] = field.minimum
    if field.maximum is not None:
        schema["maximum"] = field.maximum
    return schema


def _string(field: Field) -> Schema:
    schema: Schema = {"type": "string"}
    if field.pattern is not None:
        schema["pattern"] = field.pattern
    return schema


def _unit(pattern: str, number: Schema) -> Callable[[Field], Schema]:
    return lambda field: {"anyOf": [number, {"type": "string", "pattern": pattern}]}


def _map(field: Field) -> Schema:
    assert field.key is not None and field.item is not None
    schema: Schema = {
        "type": "object",
        "propertyNames": _string(field.key),
        "additionalProperties": _field(field.item),
    }
    if field.max_items is not None:
        schema["maxProperties"] = field.max_items
    return schema


def _list(field: Field) -> Schema:
    assert field.item is not None
    schema: Schema = {"type": "array", "items": _field(field.item)}
    if field.max_items is not None:
        schema["maxItems"] = field.max_items
    if field.min_items is not None:
        schema["minItems"] = field.min_items
    return schema


def _link_impairments(field: Field) -> Schema:
    """One set of impairments for both directions, or one per sending endpoint."""
    assert field.spec is not None and field.key is not None
    impairments = _object(field.spec)
    by_end = {
        "type": "object",
        "propertyNames": _string(field.key),
        "additionalProperties": impairments,
    }
    return {"anyOf": [impairments, by_end]}


_IFNAME: Schema = {"type": "string", "pattern": IFNAME_PATTERN, "not": {"enum": ["lo", ".", ".."]}}
_IPV4: Schema = {"type": "string", "format": "ipv4"}

_KINDS: dict[str, Callable[[Field], Schema]] = {
    "version": lambda f: {"enum": list(LABFILE_VERSIONS)},
    "string": _string,
    "integer": lambda f: _range(f, {"type": "integer"}),
    "number": lambda f: _range(f, {"type": "number"}),
    "boolean": lambda f: {"type": "boolean"},
    "choice": lambda f: {"enum": list(f.choices)},
    "size": _unit(SIZE_PATTERN, {"type": "integer", "minimum": 0}),
    "rate": _unit(RATE_PATTERN, {"type": "integer", "minimum": 1}),
    "time": _unit(TIME_PATTERN, {"const": 0}),
    "percent": _unit(PERCENT_PATTERN, {"type": "number", "minimum": 0, "maximum": 100}),
    "subnet": lambda f: {"type": "string", "pattern": _CIDR},
    "cidr": lambda f: {"type": "string", "pattern": _CIDR},
    "ipv4": lambda f: dict(_IPV4),
    "gateway": lambda f: {"anyOf": [_IPV4, {"const": "none"}]},
    "mac": lambda f: {"type": "string", "pattern": MAC_PATTERN},
    "ifname": lambda f: dict(_IFNAME),
    "parent": lambda f: {
        "anyOf": [
            {"type": "string", "pattern": _NAME},
            {"type": "string", "pattern": "^host:[A-Za-z0-9_.-]{1,15}$"},
        ]
    },
    "rootfs": lambda f: {"anyOf": [{"const": "host"}, {"type": "string", "pattern": "^/"}]},
    # The loader's parser (labplan.imageref) is the judge; this only keeps out what no
    # reference can be: spaces, an empty text, characters outside the grammar.
    "image": lambda f: {"type": "string", "pattern": IMAGE_PATTERN, "maxLength": 512},
    "path": lambda f: {"type": "string", "pattern": "^/"},
    "env_value": lambda f: {"type": ["string", "number"]},
    "object": lambda f: _object(f.spec) if f.spec is not None else {"type": "object"},
    "map": _map,
    "list": _list,
    "interface4": lambda f: {"type": "string", "pattern": _CIDR},
    "subnet6": lambda f: {"type": "string", "pattern": _CIDR6},
    "ipv6": lambda f: {"type": "string", "format": "ipv6"},
    "route_dst": lambda f: {"anyOf": [{"type": "string", "pattern": p} for p in (_CIDR, _CIDR6)]},
    "ip": lambda f: {"anyOf": [dict(_IPV4), {"type": "string", "format": "ipv6"}]},
    "interface6": lambda f: {"type": "string", "pattern": r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$"},
    "endpoint": _string,
    "link_impairments": _link_impairments,
    "scenario_step": lambda f: {
        "type": "object",
        "required": ["at"],
        "properties": {"at": _unit(TIME_PATTERN, {"const": 0})(f)},
        "minProperties": 2,
        "maxProperties": 2,
    },
}
