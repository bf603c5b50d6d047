"""The week as the calendar draws it: days from midnight to midnight in a zone, bookings
cut into pieces on them, overlapping shares side by side."""

from __future__ import annotations

from datetime import UTC, datetime

from labmgr.web.calendar.layout import week_days, week_start
from labmgr.web.timezones import zone_named
from tests.unit.labmgr.reservations.helpers import GIB, T0, at


def test_a_booking_over_midnight_shows_on_both_days() -> None:
    monday = T0.replace(hour=0)
    blocks = [
        {
            "start": at(13),  # Monday 22:00
            "end": at(17),  # Tuesday 02:00
            "mine": True,
            "owner": "alice",
            "whole_host": True,
            "cpus": 4.0,
            "memory": 0,
            "pids": 0,
        }
    ]
    days = week_days(blocks, monday, T0)
    assert [(p.when, p.top) for p in days[0].pieces] == [("22:00\u201324:00", 91.667)]
    assert [(p.when, p.top) for p in days[1].pieces] == [("00:00\u201302:00", 0.0)]
    assert days[0].today and not days[1].today


def test_overlapping_shares_stand_side_by_side() -> None:
    monday = T0.replace(hour=0)
    common = {"mine": False, "owner": None, "whole_host": False, "cpus": 1.0, "memory": GIB}
    blocks = [
        {**common, "start": at(1), "end": at(3), "pids": 100},
        {**common, "start": at(2), "end": at(4), "pids": 100},
        {**common, "start": at(3), "end": at(5), "pids": 100},
    ]
    pieces = week_days(blocks, monday, T0)[0].pieces
    assert [(p.lane, p.lanes) for p in pieces] == [(0, 2), (1, 2), (0, 2)]
    assert pieces[0].what == "1 CPU · 1G · 100 processes"


def test_a_day_when_the_clocks_change_is_23_hours_long() -> None:
    _, paris = zone_named("Europe/Paris")
    monday = week_start(datetime(2030, 3, 31, 12, tzinfo=UTC), paris)  # Sunday: summer time
    # 02:00-04:00 UTC that Sunday is 03:00-06:00 local: after the lost hour.
    block = {
        "start": datetime(2030, 3, 31, 2, tzinfo=UTC),
        "end": datetime(2030, 3, 31, 4, tzinfo=UTC),
        "mine": True,
        "owner": "alice",
        "whole_host": True,
        "id": 1,
    }
    sunday = week_days([block], monday, T0, paris)[6]
    (piece,) = sunday.pieces
    assert piece.when == "04:00\u201306:00"
    assert (piece.top, piece.height) == (round(3 / 23 * 100, 3), round(2 / 23 * 100, 3))
