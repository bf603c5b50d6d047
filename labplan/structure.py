"""First pass of validation: a parsed tree checked against the tables of `labplan.fields`.

Unknown keys, missing keys, wrong types and values out of range are found here, each as a
FieldError with its dotted path. Values come back converted (sizes in bytes, addresses
canonical). Rules that relate two fields are `labplan.labfile`'s.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sized
from typing import Final, TypeVar

from labplan import imageref
from labplan.errors import FieldError
from labplan.fields import SCENARIO_ACTIONS, Field, ObjectSpec
from labplan.model import HOST_PARENT_PREFIX, LABFILE_VERSIONS
from labplan.units import (
    UnitError,
    format_percent,
    format_rate,
    format_size,
    format_time,
    parse_percent,
    parse_rate,
    parse_size,
    parse_time,
    show_value,
)


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()  # a value that produced an error; its checks stop there


def join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


MAX_REPORTED = 200  # errors listed before the rest are only counted
# Argument lists a shell-minded user may write as one string: refused with an example,
# never split (a shell's quoting rules are not the labfile's).
LIST_EXAMPLES = {
    "command": '[python3, -m, http.server, "80"]',
    "entrypoint": "[/bin/sh, -c]",
    "exec command": "[ip, link, set, eth1, mtu, '9000']",
}


class Checker:
    """Collects errors and the document position of every path it visits, so errors
    found by later passes can still be reported in document order."""

    def __init__(self, version: int = 1) -> None:
        self._errors: list[tuple[int, int, FieldError]] = []
        self._positions: dict[str, int] = {"": 0}
        # The document's labfile version: a key of a later version is refused by name.
        self.version = version

    def visit(self, path: str) -> None:
        self._positions.setdefault(path, len(self._positions))

    def error(self, path: str, message: str) -> None:
        self._errors.append((self._position(path), len(self._errors), FieldError(path, message)))

    def _position(self, path: str) -> int:
        while path not in self._positions:
            path = path.rpartition(".")[0]
        return self._positions[path]

    @property
    def count(self) -> int:
        return len(self._errors)

    @property
    def errors(self) -> list[FieldError]:
        """In document order; past MAX_REPORTED, the rest is counted in one last line so a
        broken 1,000-node file does not bury its first problems."""
        ordered = [e for _, _, e in sorted(self._errors, key=lambda t: (t[0], t[1]))]
        if len(ordered) <= MAX_REPORTED:
            return ordered
        more = len(ordered) - MAX_REPORTED
        return [*ordered[:MAX_REPORTED], FieldError("", f"... and {more} more problems")]

    # -- walking ---------------------------------------------------------------

    def check(self, field: Field, value: object, path: str) -> object:
        """`value` converted for `field`, or INVALID after recording why."""
        self.visit(path)
        if value is None:
            hint = "" if field.required else " (remove the key to take the default)"
            self.error(path, f"null is not allowed here{hint}")
            return INVALID
        if field.kind == "object":
            assert field.spec is not None
            return self.check_object(field.spec, value, path)
        if field.kind == "map":
            return self._check_map(field, value, path)
        if field.kind == "list":
            return self._check_list(field, value, path)
        if field.kind == "link_impairments":
            return self._check_link_impairments(field, value, path)
        if field.kind == "scenario_step":
            return self._check_scenario_step(field, value, path)
        try:
            converted = SCALARS[field.kind](field, value)
            _check_range(field, value, converted)
        except UnitError as error:
            self.error(path, str(error))
            return INVALID
        return converted

    def check_object(self, spec: ObjectSpec, value: object, path: str) -> object:
        if not isinstance(value, Mapping):
            self.error(path, f"{show_value(value)} is not a mapping (the {spec.title} needs keys)")
            return INVALID
        result: dict[str, object] = {}
        for key, item in value.items():
            field = spec.get(key) if isinstance(key, str) else None
            if field is None:
                self.visit(join(path, key))
                known = ", ".join(spec.names)
                self.error(join(path, key), f"unknown key (known keys: {known})")
                continue
            if field.since > self.version:
                self.visit(join(path, key))
                self.error(
                    join(path, key),
                    f"{key} is a labfile {field.since} key; write labfile: {field.since} "
                    "at the top of the file to use it",
                )
                continue
            result[key] = self.check(field, item, join(path, key))
        for field in spec.fields:
            if field.required and field.name not in value:
                self.error(join(path, field.name), f"{field.name} is required")
        return result

    def _check_map(self, field: Field, value: object, path: str) -> object:
        assert field.key is not None and field.item is not None
        if not isinstance(value, Mapping):
            self.error(
                path,
                f"{show_value(value)} is not a mapping of {field.key.name} to {field.item.name}",
            )
            return INVALID
        if self._too_many(field, value, path):
            return INVALID
        result: dict[str, object] = {}
        for key, item in value.items():
            item_path = join(path, key)
            if self.check(field.key, key, item_path) is INVALID:
                continue
            result[key] = self.check(field.item, item, item_path)
        return result

    def _check_list(self, field: Field, value: object, path: str) -> object:
        assert field.item is not None
        if isinstance(value, str) and field.name in LIST_EXAMPLES:
            self.error(
                path,
                f"{show_value(value)} is not a list (write the {field.name} as a list "
                f"of arguments, like {LIST_EXAMPLES[field.name]})",
            )
            return INVALID
        if not isinstance(value, list | tuple):
            self.error(path, f"{show_value(value)} is not a list")
            return INVALID
        if self._too_many(field, value, path):
            return INVALID
        if field.min_items is not None and len(value) < field.min_items:
            exactly = field.min_items == field.max_items
            self.error(
                path,
                f"{field.scope} has {'exactly' if exactly else 'at least'} {field.min_items} "
                f"{field.label or field.name}; this one has {len(value)}",
            )
            return INVALID
        return [self.check(field.item, item, join(path, i)) for i, item in enumerate(value)]

    def _check_link_impairments(self, field: Field, value: object, path: str) -> object:
        """A link's impairments: one set for both directions, or a map from an endpoint
        (the end that sends) to its set. Converted to the map form, "" for both."""
        assert field.spec is not None and field.key is not None
        if not isinstance(value, Mapping):
            self.error(path, f"{show_value(value)} is not a mapping (the impairments need keys)")
            return INVALID
        if not any(isinstance(key, str) and ":" in key for key in value):
            return {"": self.check_object(field.spec, value, path)}
        result: dict[str, object] = {}
        for key, item in value.items():
            item_path = join(path, key)
            self.visit(item_path)
            if self.check(field.key, key, item_path) is INVALID:
                continue
            result[key] = self.check_object(field.spec, item, item_path)
        return result

    def _check_scenario_step(self, field: Field, value: object, path: str) -> object:
        """A scenario's step: `at` in microseconds and its one action, left as written for
        labplan.scenarios to check against the lab."""
        if not isinstance(value, Mapping):
            self.error(path, f"{show_value(value)} is not a step (write at: 10s and one action)")
            return INVALID
        result: dict[str, object] = {}
        if "at" not in value:
            self.error(join(path, "at"), "at is required: when the step runs, like 10s")
        else:
            self.visit(join(path, "at"))
            try:
                at = parse_time(value["at"])
                if field.maximum is not None and at > field.maximum:
                    raise UnitError(f"at must be at most {format_time(int(field.maximum))}")
                result["at"] = at
            except UnitError as error:
                self.error(join(path, "at"), str(error))
        actions = [key for key in value if key != "at"]
        for key in actions:
            if key not in SCENARIO_ACTIONS:
                self.visit(join(path, key))
                known = ", ".join(SCENARIO_ACTIONS)
                self.error(join(path, key), f"unknown action (a step's actions: {known})")
        known_actions = [key for key in actions if key in SCENARIO_ACTIONS]
        if not actions:
            self.error(path, "a step needs one action, like down: r1:eth1")
        elif len(known_actions) > 1:
            self.error(
                join(path, known_actions[1]), "one action per step: give it a step of its own"
            )
        if len(known_actions) == 1 and "at" in result:
            self.visit(join(path, known_actions[0]))
            result[str(known_actions[0])] = value[known_actions[0]]
            return result
        return INVALID

    def _too_many(self, field: Field, value: Sized, path: str) -> bool:
        """Past its bound, a map or list is refused whole, before any item costs a check."""
        if field.max_items is None or len(value) <= field.max_items:
            return False
        what = field.label or field.name
        self.error(
            path,
            f"{field.scope} has at most {field.max_items:,} {what}; this one has {len(value):,}",
        )
        return True


# -- scalar kinds -----------------------------------------------------------------


def _string(field: Field, value: object) -> str:
    if not isinstance(value, str):
        quote = " (quote it)" if isinstance(value, int | float | bool) else ""
        raise UnitError(f"{show_value(value)} is not a string{quote}")
    if "\0" in value:
        raise UnitError(f"{show_value(value)} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800" escape
        raise UnitError("the text is not valid Unicode (it holds a lone surrogate)") from None
    if field.pattern is not None and not re.fullmatch(field.pattern, value):
        raise UnitError(
            f"{show_value(value)} is not a valid {field.label or field.name} ({field.pattern_hint})"
        )
    return value


def _version(field: Field, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnitError(f"{show_value(value)} is not a version number; write labfile: 2")
    if value not in LABFILE_VERSIONS:
        raise UnitError(
            f"version {value} is not supported; this labmgr reads versions "
            f"{' and '.join(map(str, LABFILE_VERSIONS))}"
        )
    return value


def document_version(data: object) -> int:
    """The version a document says it is, for the checks of the keys it may use; 1 when it
    says none that this labmgr reads (that error is the version field's own)."""
    version = data.get("labfile") if isinstance(data, Mapping) else None
    return version if version in LABFILE_VERSIONS and not isinstance(version, bool) else 1


def _integer(field: Field, value: object) -> int:
    if isinstance(value, bool):
        raise UnitError(f"{show_value(value)} is a boolean, not a whole number")
    if not isinstance(value, int):
        raise UnitError(f"{show_value(value)} is not a whole number")
    return value


def _number(field: Field, value: object) -> float:
    if isinstance(value, bool):
        raise UnitError(f"{show_value(value)} is a boolean, not a number")
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise UnitError(f"{show_value(value)} is not a number")
    return float(value)


def _boolean(field: Field, value: object) -> bool:
    if not isinstance(value, bool):
        raise UnitError(f"{show_value(value)} is not true or false")
    return value


def _choice(field: Field, value: object) -> str:
    if not isinstance(value, str) or value not in field.choices:
        raise UnitError(f"{show_value(value)} is not one of {', '.join(field.choices)}")
    return value


def _subnet(field: Field, value: object) -> str:
    network = _network(value, "a subnet")
    if network.prefixlen > 30:
        raise UnitError(f"{network} leaves no room for hosts (use a prefix of /30 or shorter)")
    return str(network)


def _cidr(field: Field, value: object) -> str:
    return str(_network(value, "an IPv4 CIDR"))


def _network(value: object, noun: str, example: str = "like 10.10.0.0/24") -> ipaddress.IPv4Network:
    hint = f"{show_value(value)} is not {noun} (write an IPv4 CIDR, {example})"
    return _strict_network(value, ipaddress.IPv4Network, hint)


_Net = TypeVar("_Net", ipaddress.IPv4Network, ipaddress.IPv6Network)


def _strict_network(value: object, kind: type[_Net], hint: str) -> _Net:
    """`value` as a network of `kind`, refused with `hint`, or naming the network meant
    when it has host bits set."""
    if not isinstance(value, str) or "/" not in value:
        raise UnitError(hint)
    try:
        return kind(value)
    except ValueError:
        pass
    try:
        loose = kind(value, strict=False)
    except ValueError:
        raise UnitError(hint) from None
    raise UnitError(f"{value} has host bits set; did you mean {loose}?")


def _ipv4(field: Field, value: object) -> str:
    if isinstance(value, str):
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            pass
    if isinstance(value, str) and "/" in value:
        raise UnitError(
            f"{show_value(value)} is not an IPv4 address (give the bare address, "
            "like 10.10.0.10; the prefix comes from the subnet)"
        )
    raise UnitError(f"{show_value(value)} is not an IPv4 address (like 10.10.0.10)")


def _subnet6(field: Field, value: object) -> str:
    network = _network6(value, "an IPv6 subnet")
    if network.prefixlen > 126:
        raise UnitError(f"{network} leaves no room for hosts (use a prefix of /126 or shorter)")
    return str(network)


def _network6(value: object, noun: str) -> ipaddress.IPv6Network:
    hint = f"{show_value(value)} is not {noun} (write an IPv6 CIDR, like fd00:10::/64)"
    return _strict_network(value, ipaddress.IPv6Network, hint)


def _ipv6(field: Field, value: object) -> str:
    if isinstance(value, str) and "/" not in value:
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            pass
    if isinstance(value, str) and "/" in value:
        raise UnitError(
            f"{show_value(value)} is not an IPv6 address (give the bare address, "
            "like fd00:10::10; the prefix comes from the subnet6)"
        )
    raise UnitError(f"{show_value(value)} is not an IPv6 address (like fd00:10::10; quote it)")


def _route_dst(field: Field, value: object) -> str:
    if isinstance(value, str) and ":" in value:
        return str(_network6(value, "an IPv6 CIDR"))
    return str(_network(value, "a CIDR", "like 10.10.0.0/24, or ::/0 for IPv6"))


def _ip(field: Field, value: object) -> str:
    if isinstance(value, str) and ":" in value:
        return _ipv6(field, value)
    try:
        return _ipv4(field, value)
    except UnitError:
        raise UnitError(
            f"{show_value(value)} is not an IP address (like 10.10.0.1 or fd00:10::1)"
        ) from None


def _interface(value: object, version: int) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    family, example = ("IPv4", "10.0.12.1/30") if version == 4 else ("IPv6", "fd00:12::1/64")
    hint = f"{show_value(value)} is not an {family} address with its prefix (like {example})"
    if not isinstance(value, str) or "/" not in value:
        raise UnitError(hint)
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise UnitError(hint) from None
    if interface.version != version:
        raise UnitError(hint)
    if interface.ip.is_multicast or interface.ip.is_unspecified or interface.ip.is_loopback:
        raise UnitError(f"{value} is not a unicast address")
    return interface


def _interface4(field: Field, value: object) -> str:
    return str(_interface(value, 4))


def _interface6(field: Field, value: object) -> str:
    return str(_interface(value, 6))


def _gateway(field: Field, value: object) -> str:
    if value == "none":
        return "none"
    try:
        return _ipv4(field, value)
    except UnitError:
        raise UnitError(f'{show_value(value)} is not an IPv4 address or "none"') from None


def _mac(field: Field, value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", value):
        raise UnitError(
            f"{show_value(value)} is not a MAC address (like 02:42:0a:0a:00:0a; quote it in YAML)"
        )
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise UnitError(f"{mac} is a multicast MAC address; the first byte must be even")
    if mac == "00:00:00:00:00:00":
        raise UnitError(f"{mac} is not a usable MAC address")
    return mac


def check_ifname(value: object) -> str:
    """A Linux interface name: 1..15 bytes of [A-Za-z0-9_.-], not lo, . or .."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise UnitError(
            f"{show_value(value)} is not an interface name (use letters, digits, '_', '.' and '-')"
        )
    if len(value.encode()) > 15:
        raise UnitError(f"{show_value(value)} is longer than 15 bytes, the kernel's limit")
    if value in ("lo", ".", ".."):
        raise UnitError(f"{show_value(value)} cannot be used as an interface name")
    return value


def _ifname(field: Field, value: object) -> str:
    return check_ifname(value)


def _parent(field: Field, value: object) -> str:
    if isinstance(value, str) and value.startswith(HOST_PARENT_PREFIX):
        check_ifname(value.removeprefix(HOST_PARENT_PREFIX))
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", value):
        raise UnitError(f"{show_value(value)} is not a network name or host:IFNAME")
    return value


def _path(field: Field, value: object) -> str:
    text = _string(field, value)
    if not text.startswith("/"):
        raise UnitError(f"{show_value(value)} is not an absolute path (start it with /)")
    if ".." in text.split("/"):
        raise UnitError(f"{show_value(value)} contains a .. component")
    return text


def _rootfs(field: Field, value: object) -> str:
    if value == "host":
        return "host"
    try:
        return _path(field, value)
    except UnitError as error:
        raise UnitError(f'{error} (rootfs is "host" or an absolute directory)') from None


def _image(field: Field, value: object) -> str:
    text = _string(field, value)
    try:
        return imageref.parse(text).canonical
    except ValueError as error:
        raise UnitError(str(error)) from None


def _env_value(field: Field, value: object) -> str:
    # Like compose: numbers are written as strings; booleans are ambiguous (yes? True?).
    if isinstance(value, bool):
        raise UnitError(f"{show_value(value)} is a boolean; quote it to make it a string")
    if isinstance(value, int | float):
        return str(value)
    return _string(field, value)


SCALARS: dict[str, Callable[[Field, object], object]] = {
    "version": _version,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "choice": _choice,
    "size": lambda f, v: parse_size(v),
    "rate": lambda f, v: parse_rate(v),
    "time": lambda f, v: parse_time(v),
    "percent": lambda f, v: parse_percent(v),
    "subnet": _subnet,
    "cidr": _cidr,
    "ipv4": _ipv4,
    "gateway": _gateway,
    "mac": _mac,
    "ifname": _ifname,
    "parent": _parent,
    "rootfs": _rootfs,
    "image": _image,
    "path": _path,
    "env_value": _env_value,
    "interface4": _interface4,
    "subnet6": _subnet6,
    "ipv6": _ipv6,
    "route_dst": _route_dst,
    "ip": _ip,
    "interface6": _interface6,
    "endpoint": _string,
}

FORMATTERS: dict[str, Callable[[int], object]] = {
    "size": format_size,
    "rate": format_rate,
    "time": format_time,
}


def _shown_limit(field: Field, limit: float) -> str:
    if field.kind == "percent":
        return format_percent(limit)
    formatter = FORMATTERS.get(field.kind)
    if formatter is not None:
        return str(formatter(int(limit)))
    return f"{limit:g}" if isinstance(limit, float) else str(limit)


def range_text(field: Field) -> str:
    """`between 1 and 10000`, `at least 4M`, `more than 0 and at most 1024`."""
    low = high = ""
    if field.minimum is not None:
        shown = _shown_limit(field, field.minimum)
        low = f"more than {shown}" if field.exclusive_minimum else f"at least {shown}"
    if field.maximum is not None:
        high = f"at most {_shown_limit(field, field.maximum)}"
    if low.startswith("at least") and high:
        return f"between {low.removeprefix('at least ')} and {high.removeprefix('at most ')}"
    return " and ".join(t for t in (low, high) if t)


def _check_range(field: Field, value: object, converted: object) -> None:
    if not isinstance(converted, int | float) or isinstance(converted, bool):
        return
    too_low = field.minimum is not None and (
        converted <= field.minimum if field.exclusive_minimum else converted < field.minimum
    )
    too_high = field.maximum is not None and converted > field.maximum
    if too_low or too_high:
        raise UnitError(
            f"{show_value(value)} is out of range: {field.name} must be {range_text(field)}"
        )
