"""Sizes, rates, times and percentages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256M", 256 * 1024**2),
        ("1g", 1024**3),
        ("4096", 4096),
        (0, 0),
        ("1.5K", 1536),
        (" 2K", 2048),
        (1024.0, 1024),
    ],
)
def test_sizes_are_bytes_with_binary_suffixes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "12Q",
            '"12Q" is not a size (use a number of bytes with an optional K, M or G suffix, '
            "like 256M)",
        ),
        (
            "1MB",
            '"1MB" is not a size (use a number of bytes with an optional K, M or G suffix, '
            "like 256M)",
        ),
        (
            True,
            "true is not a size (use a number of bytes with an optional K, M or G suffix, "
            "like 256M)",
        ),
        ("0.3", '"0.3" is not a whole number of bytes'),
    ],
)
def test_it_explains_what_is_not_a_size(value: object, message: str) -> None:
    with pytest.raises(UnitError) as raised:
        parse_size(value)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10mbit", 10**7),
        ("1.5gbit", 1_500_000_000),
        ("800bit", 800),
        (64000, 64000),
        ("2Mbit", 2 * 10**6),
    ],
)
def test_rates_are_bits_per_second_with_decimal_units(text: object, expected: int) -> None:
    assert parse_rate(text) == expected


def test_a_byte_rate_is_refused_rather_than_guessed() -> None:
    with pytest.raises(UnitError, match='"10mbps" is not a rate'):
        parse_rate("10mbps")


@pytest.mark.parametrize(
    ("text", "expected"), [("20ms", 20_000), ("1.5s", 1_500_000), ("250us", 250), (0, 0)]
)
def test_times_are_microseconds(text: object, expected: int) -> None:
    assert parse_time(text) == expected


def test_a_time_needs_a_unit() -> None:
    with pytest.raises(UnitError) as raised:
        parse_time(20)
    assert str(raised.value) == "20 is not a time (use a number with a us, ms or s unit, like 20ms)"


@pytest.mark.parametrize(("text", "expected"), [("0.5%", 0.5), ("100%", 100.0), (2, 2.0)])
def test_percentages(text: object, expected: float) -> None:
    assert parse_percent(text) == expected


def test_a_percentage_written_as_text_needs_its_sign() -> None:
    with pytest.raises(UnitError, match=r'"0.5" is not a percentage'):
        parse_percent("0.5")


@pytest.mark.parametrize(
    ("value", "text"),
    [(256 * 1024**2, "256M"), (0, 0), (1000, 1000), (1536, "1536"), (3 * 1024**3, "3G")],
)
def test_sizes_format_with_the_largest_exact_suffix(value: int, text: object) -> None:
    expected = int(text) if isinstance(text, str) and text.isdigit() else text
    assert format_size(value) == expected


def test_rates_times_and_percentages_format_exactly() -> None:
    assert [format_rate(10**7), format_rate(1500), format_rate(2 * 10**9)] == [
        "10mbit",
        "1500bit",
        "2gbit",
    ]
    assert [format_time(20_000), format_time(1_500_000), format_time(0)] == ["20ms", "1500ms", "0s"]
    assert [format_percent(0.5), format_percent(1.0), format_percent(1e-05)] == [
        "0.5%",
        "1%",
        "0.00001%",
    ]


@given(st.integers(min_value=0, max_value=2**50))
def test_a_formatted_size_parses_back_to_itself(value: int) -> None:
    assert parse_size(format_size(value)) == value


@given(st.integers(min_value=1, max_value=10**12))
def test_a_formatted_rate_parses_back_to_itself(value: int) -> None:
    assert parse_rate(format_rate(value)) == value


@given(st.integers(min_value=0, max_value=10**9))
def test_a_formatted_time_parses_back_to_itself(value: int) -> None:
    assert parse_time(format_time(value)) == value


@given(st.floats(min_value=0, max_value=100))
def test_a_formatted_percentage_parses_back_to_itself(value: float) -> None:
    assert parse_percent(format_percent(value)) == value
