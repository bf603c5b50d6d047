"""The network drivers' registry: every driver of the labfile's enum has its module, each
says only what the labfile can hold, and the rest of labplan reads them instead of
naming a driver."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, ClassVar, get_args

import pytest

from labplan import drivers
from labplan.drivers import DRIVERS, OP_DRIVERS, Driver, OpTraits, Phase
from labplan.drivers.bridge import DRIVER as BRIDGE
from labplan.fields import ATTACHMENT, NETWORK
from labplan.labfile import validate
from labplan.model import DriverName
from labplan.ops import OP_TYPES, CreateBridge, Op
from labplan.schema import json_schema

DRIVERS_DIR = Path(drivers.__file__).parent
NOT_TAKEN = "\N{EN DASH}"  # a cell of docs/labfile.md's table of options


def test_every_driver_of_the_labfile_enum_has_its_own_module() -> None:
    names = list(get_args(DriverName))
    assert list(DRIVERS) == names
    for name in names:
        assert (DRIVERS_DIR / f"{name}.py").is_file()
        assert importlib.import_module(f"labplan.drivers.{name}").DRIVER is DRIVERS[name]


def test_the_schema_and_the_validator_offer_the_drivers_of_the_registry() -> None:
    network = json_schema()["properties"]["networks"]["additionalProperties"]
    assert network["properties"]["driver"]["enum"] == list(DRIVERS)
    assert NETWORK.get("driver").choices == tuple(DRIVERS)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(DRIVERS))
def test_a_driver_speaks_only_of_options_the_labfile_has(name: str) -> None:
    driver = DRIVERS[name]
    assert driver.options <= set(NETWORK.names) - {"driver"}
    assert driver.attachment_options <= set(ATTACHMENT.names)
    assert set(driver.required) <= driver.options
    assert set(driver.defaults) <= driver.options
    assert set(driver.default_reasons) == set(driver.defaults) - {"mode"}
    assert bool(driver.modes) == ("mode" in driver.options)
    if driver.modes:
        assert driver.defaults["mode"] in driver.modes


@pytest.mark.parametrize("name", list(DRIVERS))
def test_a_driver_gives_its_nodes_a_link_exactly_when_it_addresses_them(name: str) -> None:
    driver = DRIVERS[name]
    assert (driver.attachment_op is not None) == driver.addressed
    assert ({"ipv4", "ifname"} <= driver.attachment_options) == driver.addressed
    if driver.attachment_op is not None:
        assert driver.attachment_op in OP_DRIVERS  # someone renders and counts it


def test_the_ops_of_the_drivers_are_ops_of_the_plan_format() -> None:
    assert set(OP_DRIVERS) <= set(OP_TYPES)
    assert all(op in OP_DRIVERS[op].ops for op in OP_DRIVERS)


@pytest.mark.parametrize(
    ("driver", "mode", "reach"),
    [
        ("bridge", None, True),
        ("overlay", None, True),
        ("ipvlan", "l3", True),
        ("macvlan", "bridge", True),
        ("macvlan", "private", False),
        ("macvlan", "vepa", False),
        ("host", None, False),
        ("none", None, False),
    ],
)
def test_only_drivers_that_switch_between_their_nodes_let_them_reach_each_other(
    tree: dict[str, Any], driver: str, mode: str | None, reach: bool
) -> None:
    network: dict[str, Any] = {"driver": driver}
    if DRIVERS[driver].addressed:
        network["subnet"] = "10.30.0.0/24"
    if mode is not None:
        network.update(parent="lan", mode=mode)
    tree["networks"]["probe"] = network
    probe = validate(tree).network("probe")
    assert DRIVERS[driver].members_reach_each_other(probe) is reach


def test_a_driver_missing_from_the_modules_stops_the_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def module_of(name: str) -> Driver:
        if name == "overlay":
            raise AssertionError("Expected code to be unreachable")
        return DRIVERS[name]

    monkeypatch.setattr(drivers, "_module_of", module_of)
    with pytest.raises(ImportError, match="driver 'overlay' of the labfile's enum has no module"):
        drivers._registry()


def test_a_module_holding_another_driver_stops_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drivers, "_module_of", lambda name: BRIDGE)
    with pytest.raises(ImportError, match="the module of driver 'host' holds driver 'bridge'"):
        drivers._registry()


def test_two_drivers_making_one_op_stop_the_import() -> None:
    class Copycat(Driver):
        name = "copycat"
        ops: ClassVar[dict[type[Op], OpTraits]] = {CreateBridge: OpTraits(Phase.BRIDGES)}

    with pytest.raises(ImportError, match="create_bridge is an op of both the bridge and copycat"):
        drivers._op_drivers([BRIDGE, Copycat()])


def test_the_labfile_docs_table_says_what_each_driver_takes() -> None:
    text = (Path(__file__).parents[3] / "docs" / "labfile.md").read_text()
    table = text.split("## Which option goes with which driver", 1)[1].split("\n\n")[1]
    header, _, *rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()
    ]
    assert sorted(header[1:]) == sorted(DRIVERS)
    for row in rows:
        options = re.findall(r"`([a-z_]+)`", row[0].split("(")[0])
        for name, cell in zip(header[1:], row[1:], strict=True):
            driver = DRIVERS[name]
            for option in options:
                assert (cell != NOT_TAKEN) == (option in driver.options), (option, name)
                assert (cell == "required") == (option in driver.required), (option, name)
