"""The calendar's pages: a host's week with the booking form, and the actions on one's
own bookings; thin over the reservation services, a refusal said beside its field.
Drawn in the zone the request is in (`labmgr.web.timezones`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from labmgr.accounts.permissions import Action, Resource, require
from labmgr.accounts.requests import AuthenticatedHttpRequest
from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host
from labmgr.reservations import clock
from labmgr.reservations import selectors as reservation_selectors
from labmgr.reservations.models import Reservation
from labmgr.reservations.services import (
    reservation_book,
    reservation_cancel,
    reservation_extend,
    reservation_latest_end,
    reservation_shorten,
)
from labmgr.web.calendar.forms import FIELD_KEYS, BookingForm, ChangeForm
from labmgr.web.calendar.layout import midnight, next_week, week_days, week_start
from labmgr.web.calendar.selectors import capacity_text, my_reservations, rules_text
from labmgr.web.timezones import local_text, zone_name

WEEK = timedelta(days=7)


@login_required
def calendar_home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The first host's calendar; a page explaining the wait when there is no host."""
    host = Host.objects.order_by("name").first()
    if host is None:
        return render(request, "web/calendar.html", {"host": None, "nav": "calendar"})
    return redirect("web-calendar", pk=host.pk)


@login_required
def host_calendar(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A week of `host`'s bookings, the form to book a slot of it and the actions on the
    user's own bookings there."""
    host = get_object_or_404(Host, pk=pk)
    zone, name = timezone.get_current_timezone(), zone_name()
    monday = _asked_week(request)
    window_errors: list[str] = []
    if request.method == "POST":
        form = BookingForm(request.POST)
        form.show_zone(name)
        if form.is_valid():
            # The week of the slot asked for; a refusal's add_error drops it from the form.
            asked = form.cleaned_data["start"]
            booked = _book(request, host, form, window_errors)
            if booked is not None:
                messages.success(
                    request,
                    f"Booked {host} from {local_text(booked.start)} "
                    f"to {local_text(booked.end)} {name}.",
                )
                return redirect(_week_url(host, week_start(booked.start, zone)))
            monday = week_start(asked, zone)
    else:
        form = BookingForm(initial=_initial_slot())
        form.show_zone(name)
    form.mark_invalid(window_errors)
    now = clock.now()
    availability = reservation_selectors.host_availability(
        user=request.user, host=host, start=monday, end=next_week(monday, zone)
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
            "sunday": midnight(monday.date() + timedelta(days=6), zone),
            "days": week_days(availability["blocks"], monday, now, zone),
            "hours": range(24),
            "capacity": capacity_text(host),
            "rules": rules_text(user=request.user),
            "previous_url": _week_url(host, monday - WEEK),
            "next_url": _week_url(host, monday + WEEK),
            "this_week_url": _week_url(host, week_start(now, zone)),
            "this_week": monday == week_start(now, zone),
            "zone": name,
            "mine": my_reservations(user=request.user, host=host),
            "cancelling": _asked_cancel(request),
            "here": _week_url(host, monday),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def reservation_action(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Extend, shorten or cancel one booking, then back to the page it was asked from; a
    refusal is said there in the service's words (an extension names the booking in the
    way and how far it can go)."""
    reservation = get_object_or_404(Reservation.objects.select_related("host"), pk=pk)
    try:
        require(request.user, Resource.RESERVATION, Action.CHANGE, reservation)
    except ApplicationError:  # a teacher sees the class's bookings but does not change them
        sentence = "Only the booking's owner or an admin may change it."
        return render(request, "web/refused.html", {"sentence": sentence}, status=403)
    form = ChangeForm(request.POST)
    back = _safe_next(request, reservation)
    if not form.is_valid():
        messages.error(request, "Choose a new end as a date and a time.")
        return redirect(back)
    action, end = form.cleaned_data["action"], form.cleaned_data["end"]
    if action == "cancel" and not form.cleaned_data["confirmed"]:
        # Without the page's script nothing asked yet: the calendar asks, then posts again.
        zone = timezone.get_current_timezone()
        week = week_start(reservation.start, zone).date().isoformat()
        query = urlencode({"week": week, "cancel": reservation.pk})
        return redirect(f"{reverse('web-calendar', args=[reservation.host_id])}?{query}")
    if action != "cancel" and end is None:
        messages.error(request, f"Choose the new end of the booking ({zone_name()}).")
        return redirect(back)
    try:
        sentence = _act(request, reservation, action, end)
    except ApplicationError as exc:
        messages.error(request, _refusal_text(exc, reservation, action))
        return redirect(back)
    messages.success(request, sentence)
    return redirect(back)


def _act(
    request: AuthenticatedHttpRequest, reservation: Reservation, action: str, end: datetime | None
) -> str:
    host = reservation.host
    if action == "cancel":
        reservation_cancel(reservation=reservation, actor=request.user)
        return f"Cancelled the booking of {host} from {local_text(reservation.start)}."
    assert end is not None
    change = reservation_extend if action == "extend" else reservation_shorten
    changed = change(reservation=reservation, actor=request.user, until=end)
    verb = "Extended" if action == "extend" else "Shortened"
    return f"{verb} the booking of {host}: it now ends {local_text(changed.end)} {zone_name()}."


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
    request: AuthenticatedHttpRequest, host: Host, form: BookingForm, window_errors: list[str]
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


def _asked_week(request: HttpRequest) -> datetime:
    zone = timezone.get_current_timezone()
    text = request.GET.get("week", "")
    try:
        return week_start(date.fromisoformat(text), zone)
    except ValueError:
        return week_start(clock.now(), zone)


def _asked_cancel(request: HttpRequest) -> int | None:
    text = request.GET.get("cancel", "")
    return int(text) if text.isdigit() and len(text) < 19 else None


def _initial_slot() -> dict[str, Any]:
    # The next whole hour, for one hour: a sensible slot to change.
    now = clock.now().astimezone(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return {"start": start, "end": start + timedelta(hours=1)}


def _week_url(host: Host, monday: datetime) -> str:
    query = urlencode({"week": monday.date().isoformat()})
    return f"{reverse('web-calendar', args=[host.pk])}?{query}"
