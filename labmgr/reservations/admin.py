"""Admin of reservations: the list, and actions that go through the services (extend,
cancel, destroy the labs). Bookings are made from the API or the calendar, where the
capacity check names what is in the way; here only the note is edited by hand.

Also the fair-share settings: the one reservation policy (what a user who is not an
admin may book) and each host's reserve (what labs never get of its machine)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from labmgr.accounts.requests import acting_user
from labmgr.errors import ApplicationError
from labmgr.reservations import clock, lifecycle, services
from labmgr.reservations.models import HostReserve, Reservation, ReservationPolicy
from labmgr.reservations.policy import policy_defaults
from labmgr.reservations.reserve import host_limits

EXTENSION = timedelta(hours=1)


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin[Reservation]):
    list_display = ["host", "owner", "start", "end", "share", "status", "overridden"]
    list_filter = ["status", "host", "whole_host"]
    search_fields = ["owner__username", "host__name", "host__slug", "note"]
    list_select_related = ["host", "owner"]
    date_hierarchy = "start"
    fields = (
        "owner",
        "host",
        "start",
        "end",
        "whole_host",
        "cpus",
        "memory",
        "pids",
        "status",
        "note",
        "auto_deploy",
        "booked_by",
        "overridden",
        "released",
        "last_error",
        "created",
        "updated",
    )
    readonly_fields = tuple(f for f in fields if f != "note")
    actions = ["extend_one_hour", "cancel", "destroy_labs"]

    @admin.display(description="share")
    def share(self, reservation: Reservation) -> str:
        if reservation.whole_host:
            return "whole host"
        cpus = services.format_amount("cpus", reservation.cpus)
        memory = services.format_amount("memory", reservation.memory)
        return f"{cpus} CPUs, {memory}, {reservation.pids} pids"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A reservation is cancelled, never deleted: its window stays on record.
        return False

    def save_model(self, request: HttpRequest, obj: Reservation, form: Any, change: bool) -> None:
        services.reservation_change(reservation=obj, actor=acting_user(request), note=obj.note)

    @admin.action(description="Extend by one hour (or up to the next booking)")
    def extend_one_hour(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> None:
        for reservation in queryset:
            until = min(
                reservation.end + EXTENSION,
                services.reservation_latest_end(reservation=reservation),
            )
            if until <= reservation.end:
                self.message_user(
                    request,
                    f"{reservation}: the next booking starts at its end.",
                    messages.WARNING,
                )
                continue
            self._run(
                request,
                reservation,
                lambda r, u=until: services.reservation_extend(
                    reservation=r, actor=acting_user(request), until=u
                ),
            )

    @admin.action(description="Cancel (a running one ends now; its labs go at the next tick)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> None:
        for reservation in queryset:
            self._run(
                request,
                reservation,
                lambda r: services.reservation_cancel(reservation=r, actor=acting_user(request)),
            )

    @admin.action(description="Destroy the owner's labs on the host now")
    def destroy_labs(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> None:
        for reservation in queryset:
            destroyed = lifecycle.destroy_labs_of(
                reservation, now=clock.now(), unless_still_held=False
            )
            self.message_user(
                request, f"{reservation}: {len(destroyed)} deployment(s) sent to destruction."
            )

    def _run(self, request: HttpRequest, reservation: Reservation, act: Any) -> None:
        try:
            act(reservation)
        except ApplicationError as exc:
            self.message_user(request, f"{reservation}: {exc.message}", messages.ERROR)
        else:
            self.message_user(request, f"{reservation}: done.")


@admin.register(ReservationPolicy)
class ReservationPolicyAdmin(admin.ModelAdmin[ReservationPolicy]):
    """The one policy. Its list opens it, or, before an admin saved one, the form to save
    it filled in with the settings' defaults (which hold until then). Deleting it goes
    back to the settings."""

    fields = ["max_hours", "max_days_ahead", "weekly_hours", "max_bookings", "updated"]
    readonly_fields = ["updated"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not ReservationPolicy.objects.exists()

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if ReservationPolicy.objects.filter(pk=1).exists():
            return HttpResponseRedirect(
                reverse("admin:reservations_reservationpolicy_change", args=[1])
            )
        return HttpResponseRedirect(reverse("admin:reservations_reservationpolicy_add"))

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return dict(policy_defaults().as_dict())


@admin.register(HostReserve)
class HostReserveAdmin(admin.ModelAdmin[HostReserve]):
    list_display = ["host", "cpus", "memory", "pids", "labs_get"]
    list_select_related = ["host"]
    fields = ["host", "cpus", "memory", "pids", "labs_get", "updated"]
    readonly_fields = ["labs_get", "updated"]

    @admin.display(description="labs get")
    def labs_get(self, reserve: HostReserve) -> str:
        """What is left for labs of the host: its capacity, less the reserve of its machine."""
        if reserve.pk is None:
            return "-"
        limits = host_limits(reserve.host)
        parts = [
            "? CPUs"
            if limits.cpus is None
            else f"{services.format_amount('cpus', limits.cpus)} CPUs",
            "? memory"
            if limits.memory is None
            else services.format_amount("memory", limits.memory),
            "? pids" if limits.pids is None else f"{limits.pids} pids",
        ]
        return ", ".join(parts)
