"""Sizes, rates, times and percentages: labfile text to plain numbers, and back.

Sizes are bytes (K, M, G are powers of 1024, like Docker), rates are bit/s (bit, kbit,
mbit, gbit are powers of 1000, like tc), times are microseconds (us, ms, s) and
percentages are floats. Formatting picks the largest unit that keeps the value exact, so
`parse(format(n)) == n` for every value.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation

SIZE_UNITS: dict[str, int] = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
RATE_UNITS: dict[str, int] = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
TIME_UNITS: dict[str, int] = {"us": 1, "ms": 10**3, "s": 10**6}

SIZE_HINT = "use a number of bytes with an optional K, M or G suffix, like 256M"
RATE_HINT = "use a number with a bit, kbit, mbit or gbit unit, like 10mbit"
TIME_HINT = "use a number with a us, ms or s unit, like 20ms"
PERCENT_HINT = "use a percentage like 0.5%"

SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?[KMGkmg]?$"
RATE_PATTERN = r"^[0-9]+(\.[0-9]+)?([kmgKMG]?bit)?$"
TIME_PATTERN = r"^[0-9]+(\.[0-9]+)?(us|ms|s)$"
PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"

_NUMBER_AND_UNIT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z%]*)$")


class UnitError(ValueError):
    """A value that does not parse; the message is a sentence for the user."""


def show_value(value: object) -> str:
    """How a value from a labfile appears in a message: strings quoted, YAML spelling
    for the rest, and the kind of container instead of its contents."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__} value"


def _split(value: object, noun: str, hint: str) -> tuple[Decimal, str]:
    """Split `value` into its number and its unit, or explain why it is not a `noun`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"{show_value(value)} is not {noun} ({hint})")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise UnitError(f"{show_value(value)} is not {noun} ({hint})")
        return Decimal(repr(value)), ""
    match = _NUMBER_AND_UNIT.match(value.strip())
    if match is None:
        raise UnitError(f"{show_value(value)} is not {noun} ({hint})")
    try:
        return Decimal(match.group(1)), match.group(2)
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        raise UnitError(f"{show_value(value)} is not {noun} ({hint})") from None


def _exact(value: object, number: Decimal, factor: int, what: str) -> int:
    scaled = number * factor
    if scaled != scaled.to_integral_value():
        raise UnitError(f"{show_value(value)} is not a whole number of {what}")
    return int(scaled)


def parse_size(value: object) -> int:
    """Bytes from `256M`, `1G`, `4096` or an int."""
    number, unit = _split(value, "a size", SIZE_HINT)
    factor = SIZE_UNITS.get(unit.upper())
    if factor is None:
        raise UnitError(f"{show_value(value)} is not a size ({SIZE_HINT})")
    return _exact(value, number, factor, "bytes")


def parse_rate(value: object) -> int:
    """Bit/s from `10mbit`, `1.5gbit`, `800bit` or an int (bit/s)."""
    number, unit = _split(value, "a rate", RATE_HINT)
    factor = RATE_UNITS.get(unit.lower() or "bit")
    if factor is None:
        raise UnitError(f"{show_value(value)} is not a rate ({RATE_HINT})")
    return _exact(value, number, factor, "bits per second")


def parse_time(value: object) -> int:
    """Microseconds from `20ms`, `1.5s`, `250us`; a bare number is only accepted for 0."""
    number, unit = _split(value, "a time", TIME_HINT)
    if unit == "" and number == 0:
        return 0
    factor = TIME_UNITS.get(unit)
    if factor is None:
        raise UnitError(f"{show_value(value)} is not a time ({TIME_HINT})")
    return _exact(value, number, factor, "microseconds")


def parse_percent(value: object) -> float:
    """Percent from `0.5%` or a bare number (already a percentage)."""
    number, unit = _split(value, "a percentage", PERCENT_HINT)
    if unit not in ("%", "") or (unit == "" and isinstance(value, str)):
        raise UnitError(f"{show_value(value)} is not a percentage ({PERCENT_HINT})")
    return float(number)


def _largest_exact(value: int, units: dict[str, int]) -> str:
    best = next(u for u, f in units.items() if f == 1)
    for unit, factor in units.items():
        if value % factor == 0 and factor > units[best]:
            best = unit
    return f"{value // units[best]}{best}"


def format_size(value: int) -> str | int:
    """`268435456` -> `"256M"`; a size with no exact suffix stays a number of bytes."""
    text = _largest_exact(value, SIZE_UNITS) if value else "0"
    return int(text) if text.isdigit() else text


def format_rate(value: int) -> str:
    return _largest_exact(value, RATE_UNITS)


def format_time(value: int) -> str:
    return _largest_exact(value, TIME_UNITS) if value else "0s"


def format_percent(value: float) -> str:
    """`0.5` -> `"0.5%"`, `1.0` -> `"1%"`; never an exponent, never a rounding."""
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"
