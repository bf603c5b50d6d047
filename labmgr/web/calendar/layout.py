"""The week as the calendar draws it: seven days from midnight to midnight in a zone, and
each busy block cut into the pieces falling on them, side by side where shares overlap.
Pure: blocks and times in, positions in percent of a day out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from labmgr.reservations.services import format_amount


@dataclass(frozen=True)
class Piece:
    """The part of a busy block that falls on one day, placed in percent of the day."""

    top: float
    height: float
    lane: int
    lanes: int
    label: str
    when: str
    what: str
    mine: bool
    reservation: int | None = None  # the booking's id, for its owner (and admins)
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Day:
    start: datetime
    pieces: tuple[Piece, ...]
    today: bool
    end: datetime | None = None  # the next midnight, 23 to 25 hours later


def week_start(moment: datetime | date, zone: tzinfo = UTC) -> datetime:
    """Monday 00:00 in `zone` of the week holding `moment` (a moment is taken in `zone`)."""
    day = moment.astimezone(zone).date() if isinstance(moment, datetime) else moment
    monday = day - timedelta(days=day.weekday())
    return midnight(monday, zone)


def midnight(day: date, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def next_week(monday: datetime, zone: tzinfo) -> datetime:
    return midnight(monday.date() + timedelta(days=7), zone)


def block_label(block: dict[str, Any]) -> str:
    """What a busy block says: mine, the owner's name (teachers, admins), or just busy."""
    if block["mine"]:
        return "My booking"
    return f"Booked by {block['owner']}" if block["owner"] else "Busy"


def block_amount(block: dict[str, Any]) -> str:
    if block["whole_host"]:
        return "whole host"
    return (
        f"{format_amount('cpus', Decimal(str(block['cpus'])))} CPU · "
        f"{format_amount('memory', block['memory'])} · {block['pids']} processes"
    )


def _hhmm(moment: datetime, day: datetime, end: datetime) -> str:
    return "24:00" if moment >= end else moment.astimezone(day.tzinfo).strftime("%H:%M")


def week_days(
    blocks: list[dict[str, Any]], monday: datetime, now: datetime, zone: tzinfo = UTC
) -> list[Day]:
    """The seven days of the week in `zone`, each with the pieces of the blocks falling on
    it, side by side in lanes where shares overlap. A day is placed from its own midnight
    to the next (23 or 25 hours when the clocks change)."""
    days = []
    first = monday.astimezone(zone).date()
    for i in range(7):
        start = midnight(first + timedelta(days=i), zone)
        end = midnight(first + timedelta(days=i + 1), zone)
        length = end.astimezone(UTC) - start.astimezone(UTC)
        on_day = [b for b in blocks if b["start"] < end and b["end"] > start]
        lanes = _lanes(on_day)
        pieces = []
        for block, lane in zip(on_day, lanes, strict=True):
            # In UTC: differences of two times of one ZoneInfo would ignore a clock change.
            a = max(block["start"], start).astimezone(UTC)
            b = min(block["end"], end).astimezone(UTC)
            pieces.append(
                Piece(
                    top=round((a - start.astimezone(UTC)) / length * 100, 3),
                    height=round(max((b - a) / length * 100, 1.2), 3),
                    lane=lane,
                    lanes=max(lanes) + 1,
                    label=block_label(block),
                    when=f"{_hhmm(a, start, end)}\u2013{_hhmm(b, start, end)}",
                    what=block_amount(block),
                    mine=block["mine"],
                    reservation=block.get("id") if block["mine"] else None,
                    start=block["start"],
                    end=block["end"],
                )
            )
        days.append(Day(start=start, pieces=tuple(pieces), today=start <= now < end, end=end))
    return days


def _lanes(blocks: list[dict[str, Any]]) -> list[int]:
    # Greedy: each block takes the first lane whose last block has ended.
    ends: list[datetime] = []
    lanes = []
    for block in blocks:
        lane = next((i for i, e in enumerate(ends) if e <= block["start"]), len(ends))
        if lane == len(ends):
            ends.append(block["end"])
        else:
            ends[lane] = block["end"]
        lanes.append(lane)
    return lanes
