"""The network drivers of a labfile, one module each, and the registry the rest of
labplan iterates instead of naming a driver.

`DRIVERS` maps each name of the labfile's `driver` enum (`labplan.model.DriverName`) to
its driver, in the enum's order; importing this package fails if a name has no module
(and mypy says so first). Adding a driver is its module, its name in the enum and its
case below: docs/drivers.md has the checklist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import assert_never, get_args

from labplan.drivers import bridge, host, ipvlan, macvlan, none, overlay, vlan
from labplan.drivers.base import (
    Build,
    Driver,
    Link,
    OpTraits,
    Phase,
    Placement,
    Placing,
)
from labplan.model import DriverName
from labplan.ops import Op

__all__ = [
    "DRIVERS",
    "OP_DRIVERS",
    "OP_TRAITS",
    "Build",
    "Driver",
    "Link",
    "OpTraits",
    "Phase",
    "Placement",
    "Placing",
    "article",
    "listed",
    "taking",
]


def _module_of(name: DriverName) -> Driver:
    # mypy refuses a name of the enum without its case here (assert_never), and so does
    # the import, below.
    match name:
        case "bridge":
            return bridge.DRIVER
        case "host":
            return host.DRIVER
        case "none":
            return none.DRIVER
        case "macvlan":
            return macvlan.DRIVER
        case "ipvlan":
            return ipvlan.DRIVER
        case "overlay":
            return overlay.DRIVER
        case "vlan":
            return vlan.DRIVER
        case _:
            assert_never(name)


def _registry() -> Mapping[str, Driver]:
    drivers: dict[str, Driver] = {}
    for name in get_args(DriverName):
        try:
            driver = _module_of(name)
        except AssertionError:
            raise ImportError(f"driver {name!r} of the labfile's enum has no module") from None
        if driver.name != name:
            raise ImportError(f"the module of driver {name!r} holds driver {driver.name!r}")
        drivers[name] = driver
    return MappingProxyType(drivers)


def _op_drivers(drivers: Iterable[Driver]) -> Mapping[type[Op], Driver]:
    owners: dict[type[Op], Driver] = {}
    for driver in drivers:
        for op in driver.ops:
            if op in owners:
                raise ImportError(
                    f"{op.kind} is an op of both the {owners[op].name} and {driver.name} drivers"
                )
            owners[op] = driver
    return MappingProxyType(owners)


DRIVERS = _registry()
# Each op only one driver makes, with that driver (which renders it) and what the op
# means outside the agent; the ops absent here are generic.
OP_DRIVERS = _op_drivers(DRIVERS.values())
OP_TRAITS: Mapping[type[Op], OpTraits] = MappingProxyType(
    {op: driver.ops[op] for op, driver in OP_DRIVERS.items()}
)


def taking(option: str) -> tuple[str, ...]:
    """The drivers that take a network option, in the enum's order."""
    return tuple(name for name, driver in DRIVERS.items() if option in driver.options)


def listed(names: Iterable[str], conjunction: str = "and") -> str:
    """`bridge, host and overlay`: names as a sentence lists them."""
    words = list(names)
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"
