"""The reservations calendar: a week of one host's bookings, a form to book a slot, and
the signed-in user's reservations for the dashboard.

The page is drawn on the server from `host_availability`, so it shows exactly what the
API would: the user's own bookings by name, others' as busy blocks (named for teachers
and admins only). Booking goes through `reservation_book`; a refusal becomes sentences
next to the fields it concerns. Times are UTC, as the rest of the site shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host
from labmgr.reservations import clock
from labmgr.reservations import selectors as reservation_selectors
from labmgr.reservations.choices import HOLDING_STATES
from labmgr.reservations.models import Reservation
from labmgr.reservations.services import Share, format_amount, reservation_book
from labplan.units import UnitError, parse_size

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
FORM_TIME = "%Y-%m-%dT%H:%M"
# Service error keys shown beside a form field; "window" sits under the two times.
FIELD_KEYS = ("start", "end", "whole_host", "cpus", "memory", "pids", "note")


class BookingForm(forms.Form):
    """A slot to book: a window (UTC) and the whole host or a share of it."""

    start = forms.DateTimeField(
        input_formats=[FORM_TIME],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=FORM_TIME),
        label="Start (UTC)",
    )
    end = forms.DateTimeField(
        input_formats=[FORM_TIME],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=FORM_TIME),
        label="End (UTC)",
    )
    whole_host = forms.BooleanField(required=False, label="The whole host")
    cpus = forms.DecimalField(
        min_value=Decimal(0),
        max_digits=8,
        decimal_places=3,
        initial=1,
        label="CPUs",
        required=False,
    )
    memory = forms.CharField(
        max_length=20, initial="1G", label="Memory", help_text="like 512M", required=False
    )
    pids = forms.IntegerField(min_value=0, initial=100, label="Processes", required=False)
    note = forms.CharField(max_length=200, required=False, label="Note")

    def clean_memory(self) -> int:
        text = self.cleaned_data["memory"].strip()
        if not text:
            return 0
        try:
            return parse_size(text)
        except (UnitError, TypeError) as exc:
            raise forms.ValidationError(str(exc)) from exc

    def mark_invalid(self, window_errors: list[str]) -> None:
        """Point assistive technology at each field's message (and the window's)."""
        for name, field in self.fields.items():
            if name in self.errors:
                field.widget.attrs["aria-invalid"] = "true"
                field.widget.attrs["aria-describedby"] = f"{name}-error"
        if window_errors:
            for name in ("start", "end"):
                self.fields[name].widget.attrs["aria-invalid"] = "true"
                self.fields[name].widget.attrs["aria-describedby"] = "window-error"

    def share(self) -> Share:
        data = self.cleaned_data
        if data["whole_host"]:
            return Share(whole_host=True)
        # An empty field asks for none: the service then names what a share lacks.
        return Share(False, data["cpus"] or Decimal(0), data["memory"], data["pids"] or 0)


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


@dataclass(frozen=True)
class Day:
    start: datetime
    pieces: tuple[Piece, ...]
    today: bool


def week_start(moment: datetime | date) -> datetime:
    """Monday 00:00 UTC of the week holding `moment`."""
    day = moment.date() if isinstance(moment, datetime) else moment
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def _asked_week(request: HttpRequest) -> datetime:
    text = request.GET.get("week", "")
    try:
        return week_start(date.fromisoformat(text))
    except ValueError:
        return week_start(clock.now())


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


def _hhmm(moment: datetime, day: datetime) -> str:
    return "24:00" if moment - day >= DAY else moment.strftime("%H:%M")


def week_days(blocks: list[dict[str, Any]], monday: datetime, now: datetime) -> list[Day]:
    """The seven days of the week, each with the pieces of the blocks falling on it, side
    by side in lanes where shares overlap."""
    days = []
    for i in range(7):
        start = monday + i * DAY
        end = start + DAY
        on_day = [b for b in blocks if b["start"] < end and b["end"] > start]
        lanes = _lanes(on_day)
        pieces = []
        for block, lane in zip(on_day, lanes, strict=True):
            a, b = max(block["start"], start), min(block["end"], end)
            pieces.append(
                Piece(
                    top=round((a - start) / DAY * 100, 3),
                    height=round(max((b - a) / DAY * 100, 1.2), 3),
                    lane=lane,
                    lanes=max(lanes) + 1,
                    label=block_label(block),
                    when=f"{_hhmm(a, start)}\u2013{_hhmm(b, start)}",
                    what=block_amount(block),
                    mine=block["mine"],
                )
            )
        days.append(Day(start=start, pieces=tuple(pieces), today=start <= now < end))
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


def my_reservations(*, user: Any) -> list[Reservation]:
    """The user's bookings not over yet, soonest first: the dashboard's panel."""
    return list(
        Reservation.objects.filter(
            owner=user, status__in=sorted(HOLDING_STATES), end__gt=clock.now()
        )
        .select_related("host")
        .order_by("start", "id")[:20]
    )


@login_required
def calendar_home(request: HttpRequest) -> HttpResponse:
    """The first host's calendar; a page explaining the wait when there is no host."""
    host = Host.objects.order_by("name").first()
    if host is None:
        return render(request, "web/calendar.html", {"host": None, "nav": "calendar"})
    return redirect("web-calendar", pk=host.pk)


@login_required
def host_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    """A week of `host`'s bookings and the form to book a slot of it."""
    host = get_object_or_404(Host, pk=pk)
    monday = _asked_week(request)
    window_errors: list[str] = []
    if request.method == "POST":
        form = BookingForm(request.POST)
        if form.is_valid():
            # The week of the slot asked for; a refusal's add_error drops it from the form.
            asked = form.cleaned_data["start"]
            booked = _book(request, host, form, window_errors)
            if booked is not None:
                messages.success(
                    request,
                    f"Booked {host} from {booked.start:%a %d %b %H:%M} "
                    f"to {booked.end:%a %d %b %H:%M} UTC.",
                )
                return redirect(_week_url(host, week_start(booked.start)))
            monday = week_start(asked)
    else:
        form = BookingForm(initial=_initial_slot())
    form.mark_invalid(window_errors)
    now = clock.now()
    availability = reservation_selectors.host_availability(
        user=request.user, host=host, start=monday, end=monday + WEEK
    )
    return render(
        request,
        "web/calendar.html",
        {
            "nav": "calendar",
            "host": host,
            "hosts": Host.objects.order_by("name"),
            "form": form,
            "window_errors": window_errors,
            "monday": monday,
            "sunday": monday + 6 * DAY,
            "days": week_days(availability["blocks"], monday, now),
            "hours": range(24),
            "capacity": _capacity_text(host),
            "previous_url": _week_url(host, monday - WEEK),
            "next_url": _week_url(host, monday + WEEK),
            "this_week_url": _week_url(host, week_start(now)),
            "this_week": monday == week_start(now),
        },
        status=400 if request.method == "POST" else 200,
    )


def _book(
    request: HttpRequest, host: Host, form: BookingForm, window_errors: list[str]
) -> Reservation | None:
    data = form.cleaned_data
    try:
        return reservation_book(
            actor=request.user,
            host=host,
            start=data["start"],
            end=data["end"],
            share=form.share(),
            note=data["note"],
        )
    except ApplicationError as exc:
        _show_refusal(form, exc, window_errors)
        return None


def _show_refusal(form: BookingForm, exc: ApplicationError, window_errors: list[str]) -> None:
    """Each message of the refusal beside its field; the window's under the two times."""
    shown = False
    for key, sentences in exc.errors.items():
        for sentence in sentences:
            if key in FIELD_KEYS:
                form.add_error(key, sentence)
            elif key == "window":
                window_errors.append(sentence)
            else:
                form.add_error(None, sentence)
            shown = True
    if not shown:
        form.add_error(None, exc.message)


def _initial_slot() -> dict[str, Any]:
    # The next whole hour, for one hour: a sensible slot to change.
    now = clock.now().astimezone(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return {"start": start, "end": start + timedelta(hours=1)}


def _week_url(host: Host, monday: datetime) -> str:
    query = urlencode({"week": monday.date().isoformat()})
    return f"{reverse('web-calendar', args=[host.pk])}?{query}"


def _capacity_text(host: Host) -> str:
    if not (host.cpus or host.memory or host.pids):
        return "no share capacity set: book it whole"
    return (
        f"{host.cpus} CPU · {format_amount('memory', host.memory)} · {host.pids} processes to share"
    )
