"""The reservations calendar: a week of one host's bookings, a form to book a slot, the
actions on one's own bookings (extend, shorten, cancel), and the signed-in user's
reservations for the dashboard.

The page is drawn on the server from `host_availability`, so it shows exactly what the
API would: the user's own bookings by name, others' as busy blocks (named for teachers
and admins only). Booking and changing go through the reservation services the REST API
uses (`reservation_book`, `reservation_extend`, ...): one rule set; a refusal becomes
sentences next to the fields it concerns.

Times: the server and the API keep UTC. Pages are drawn in the browser's time zone, which
the page's script keeps in the `tz` cookie (UTC until it is known); the booking form
posts the zone it was drawn in, so what was typed is read the way it was shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from labmgr.accounts.permissions import Action, Resource, require
from labmgr.accounts.selectors import user_is_admin as is_admin
from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host
from labmgr.reservations import clock
from labmgr.reservations import selectors as reservation_selectors
from labmgr.reservations.choices import HOLDING_STATES
from labmgr.reservations.models import Reservation
from labmgr.reservations.policy import policy_current, policy_hours_left
from labmgr.reservations.selectors import host_capacity
from labmgr.reservations.services import (
    Share,
    format_amount,
    reservation_book,
    reservation_cancel,
    reservation_extend,
    reservation_latest_end,
    reservation_shorten,
)
from labplan.units import UnitError, parse_size

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
FORM_TIME = "%Y-%m-%dT%H:%M"
# Service error keys shown beside a form field; "window" sits under the two times.
FIELD_KEYS = ("start", "end", "whole_host", "cpus", "memory", "pids", "note")
ZONE_COOKIE = "tz"
# Names browsers give the zone that is UTC all year: shown as "UTC".
UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}
    | {"GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "GMT0", "GMT+0", "GMT-0"}
)


def zone_named(name: str) -> tuple[str, tzinfo]:
    """The zone an IANA name stands for, UTC for an unknown or empty one."""
    name = name.strip()
    if not name or name in UTC_NAMES or len(name) > 64:
        return "UTC", UTC
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC", UTC


def user_zone(request: HttpRequest) -> tuple[str, tzinfo]:
    """The browser's time zone as its script last told (the `tz` cookie)."""
    return zone_named(request.COOKIES.get(ZONE_COOKIE, ""))


@contextmanager
def in_zone(request: HttpRequest) -> Iterator[str]:
    """Forms read and templates show times in the browser's zone while this lasts."""
    name, zone = user_zone(request)
    with timezone.override(zone):
        yield name


class BookingForm(forms.Form):
    """A slot to book: a window (read in the zone the form was drawn in, `tz`) and the
    whole host or a share of it."""

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
    # The zone the form was drawn in: its times are read in it.
    tz = forms.CharField(required=False, widget=forms.HiddenInput)
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

    def show_zone(self, name: str) -> None:
        self.fields["start"].label = f"Start ({name})"
        self.fields["end"].label = f"End ({name})"
        self.initial["tz"] = name

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
    return _midnight(monday, zone)


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _asked_week(request: HttpRequest, zone: tzinfo) -> datetime:
    text = request.GET.get("week", "")
    try:
        return week_start(date.fromisoformat(text), zone)
    except ValueError:
        return week_start(clock.now(), zone)


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
        start = _midnight(first + timedelta(days=i), zone)
        end = _midnight(first + timedelta(days=i + 1), zone)
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


def my_reservations(*, user: Any, host: Host | None = None) -> list[Reservation]:
    """The user's bookings not over yet (of `host`, if given), soonest first: the
    dashboard's panel and the calendar's "My bookings"."""
    mine = Reservation.objects.filter(
        owner=user, status__in=sorted(HOLDING_STATES), end__gt=clock.now()
    )
    if host is not None:
        mine = mine.filter(host=host)
    return list(mine.select_related("host").order_by("start", "id")[:20])


@login_required
def calendar_home(request: HttpRequest) -> HttpResponse:
    """The first host's calendar; a page explaining the wait when there is no host."""
    host = Host.objects.order_by("name").first()
    if host is None:
        return render(request, "web/calendar.html", {"host": None, "nav": "calendar"})
    return redirect("web-calendar", pk=host.pk)


@login_required
def host_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    """A week of `host`'s bookings, the form to book a slot of it and the actions on the
    user's own bookings there; drawn in the browser's time zone."""
    host = get_object_or_404(Host, pk=pk)
    zone_name, zone = (
        zone_named(request.POST.get("tz", "")) if request.method == "POST" else user_zone(request)
    )
    with timezone.override(zone):
        return _host_calendar(request, host, zone_name, zone)


def _host_calendar(request: HttpRequest, host: Host, zone_name: str, zone: tzinfo) -> HttpResponse:
    monday = _asked_week(request, zone)
    window_errors: list[str] = []
    if request.method == "POST":
        form = BookingForm(request.POST)
        form.show_zone(zone_name)
        if form.is_valid():
            # The week of the slot asked for; a refusal's add_error drops it from the form.
            asked = form.cleaned_data["start"]
            booked = _book(request, host, form, window_errors)
            if booked is not None:
                messages.success(
                    request,
                    f"Booked {host} from {local_text(booked.start, zone)} "
                    f"to {local_text(booked.end, zone)} {zone_name}.",
                )
                return redirect(_week_url(host, week_start(booked.start, zone)))
            monday = week_start(asked, zone)
    else:
        form = BookingForm(initial=_initial_slot())
        form.show_zone(zone_name)
    form.mark_invalid(window_errors)
    now = clock.now()
    availability = reservation_selectors.host_availability(
        user=request.user, host=host, start=monday, end=_next_week(monday, zone)
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
            "sunday": _midnight(monday.date() + timedelta(days=6), zone),
            "days": week_days(availability["blocks"], monday, now, zone),
            "hours": range(24),
            "capacity": _capacity_text(host),
            "rules": rules_text(user=request.user),
            "previous_url": _week_url(host, monday - WEEK),
            "next_url": _week_url(host, monday + WEEK),
            "this_week_url": _week_url(host, week_start(now, zone)),
            "this_week": monday == week_start(now, zone),
            "zone": zone_name,
            "mine": my_reservations(user=request.user, host=host),
            "cancelling": _asked_cancel(request),
            "here": _week_url(host, monday),
        },
        status=400 if request.method == "POST" else 200,
    )


def local_text(moment: datetime, zone: tzinfo) -> str:
    """A moment as the pages write it, in `zone`: "Tue 01 Dec 10:00"."""
    return f"{moment.astimezone(zone):%a %d %b %H:%M}"


def _next_week(monday: datetime, zone: tzinfo) -> datetime:
    return _midnight(monday.date() + timedelta(days=7), zone)


def _asked_cancel(request: HttpRequest) -> int | None:
    text = request.GET.get("cancel", "")
    return int(text) if text.isdigit() and len(text) < 19 else None


class ChangeForm(forms.Form):
    """An action on a booking: a new end (extend, shorten) or a confirmed cancel."""

    action = forms.ChoiceField(choices=[(a, a) for a in ("extend", "shorten", "cancel")])
    end = forms.DateTimeField(input_formats=[FORM_TIME], required=False)
    tz = forms.CharField(required=False)
    confirmed = forms.BooleanField(required=False)
    next = forms.CharField(required=False)


@login_required
@require_POST
def reservation_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Extend, shorten or cancel one booking, then back to the page it was asked from; a
    refusal is said there in the service's words (an extension names the booking in the
    way and how far it can go)."""
    reservation = get_object_or_404(Reservation.objects.select_related("host"), pk=pk)
    try:
        require(request.user, Resource.RESERVATION, Action.CHANGE, reservation)
    except ApplicationError:  # a teacher sees the class's bookings but does not change them
        sentence = "Only the booking's owner or an admin may change it."
        return render(request, "web/refused.html", {"sentence": sentence}, status=403)
    zone_name, zone = zone_named(request.POST.get("tz", ""))
    with timezone.override(zone):
        form = ChangeForm(request.POST)
        valid = form.is_valid()
    back = _safe_next(request, reservation)
    if not valid:
        messages.error(request, "Choose a new end as a date and a time.")
        return redirect(back)
    action, end = form.cleaned_data["action"], form.cleaned_data["end"]
    if action == "cancel" and not form.cleaned_data["confirmed"]:
        # Without the page's script nothing asked yet: the calendar asks, then posts again.
        week = week_start(reservation.start, zone).date().isoformat()
        query = urlencode({"week": week, "cancel": reservation.pk})
        return redirect(f"{reverse('web-calendar', args=[reservation.host_id])}?{query}")
    if action != "cancel" and end is None:
        messages.error(request, f"Choose the new end of the booking ({zone_name}).")
        return redirect(back)
    try:
        sentence = _act(request, reservation, action, end, zone, zone_name)
    except ApplicationError as exc:
        messages.error(request, _refusal_text(exc, reservation, action))
        return redirect(back)
    messages.success(request, sentence)
    return redirect(back)


def _act(
    request: HttpRequest,
    reservation: Reservation,
    action: str,
    end: datetime | None,
    zone: tzinfo,
    zone_name: str,
) -> str:
    host = reservation.host
    if action == "cancel":
        reservation_cancel(reservation=reservation, actor=request.user)
        return f"Cancelled the booking of {host} from {local_text(reservation.start, zone)}."
    assert end is not None
    change = reservation_extend if action == "extend" else reservation_shorten
    changed = change(reservation=reservation, actor=request.user, until=end)
    verb = "Extended" if action == "extend" else "Shortened"
    return f"{verb} the booking of {host}: it now ends {local_text(changed.end, zone)} {zone_name}."


def _refusal_text(exc: ApplicationError, reservation: Reservation, action: str) -> str:
    sentences = [s for messages_ in exc.errors.values() for s in messages_] or [exc.message]
    text = " ".join(dict.fromkeys(sentences))
    if action == "extend" and "window" in exc.errors:
        latest = reservation_latest_end(reservation=reservation)
        if latest > reservation.end:
            text += f" It can be extended until {latest:%Y-%m-%d %H:%M} UTC."
        else:
            text += " It cannot be extended: the next booking starts when it ends."
    return text


def _safe_next(request: HttpRequest, reservation: Reservation) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return _week_url(reservation.host, week_start(reservation.start))


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
    # What shares may take: the capacity, less what the host keeps in reserve.
    lent = host_capacity(host)
    return (
        f"{format_amount('cpus', lent.cpus)} CPU · {format_amount('memory', lent.memory)} · "
        f"{lent.pids} processes to share"
    )


def rules_text(*, user: Any) -> str:
    """The reservation policy in a sentence, with the user's hours left this week."""
    rules = policy_current()
    parts = []
    if rules.max_hours is not None:
        parts.append(f"a booking lasts at most {rules.max_hours} h")
    if rules.max_days_ahead is not None:
        parts.append(f"starts at most {rules.max_days_ahead} days ahead")
    if rules.weekly_hours is not None:
        left = policy_hours_left(owner=user, now=clock.now())
        hours = f"{left.total_seconds() / 3600:g}" if left is not None else "?"
        parts.append(f"{rules.weekly_hours} h a week each (you have {hours} h left this week)")
    if rules.max_bookings is not None:
        parts.append(f"{rules.max_bookings} bookings at once")
    if not parts:
        return ""
    text = "; ".join(parts)
    if is_admin(user=user):
        return f"The policy: {text}. As an admin you may book past it."
    return text[0].upper() + text[1:] + "."
