"""The calendar's forms: a slot to book, and an action on a booking. Their times are read
in the zone the request is drawn in (the form's own, `tz`: see `labmgr.web.timezones`)."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from labmgr.reservations.services import Share
from labplan.units import UnitError, parse_size

FORM_TIME = "%Y-%m-%dT%H:%M"
# Service error keys shown beside a form field; "window" sits under the two times.
FIELD_KEYS = ("start", "end", "whole_host", "cpus", "memory", "pids", "note")


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


class ChangeForm(forms.Form):
    """An action on a booking: a new end (extend, shorten) or a confirmed cancel."""

    action = forms.ChoiceField(choices=[(a, a) for a in ("extend", "shorten", "cancel")])
    end = forms.DateTimeField(input_formats=[FORM_TIME], required=False)
    tz = forms.CharField(required=False)
    confirmed = forms.BooleanField(required=False)
    next = forms.CharField(required=False)
