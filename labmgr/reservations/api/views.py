"""Thin REST views over the reservation services and selectors, and a host's availability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labmgr.accounts import permissions
from labmgr.accounts.permissions import Action, Resource
from labmgr.accounts.requests import acting_user
from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host
from labmgr.reservations import clock, policy, selectors, services
from labmgr.reservations.api.serializers import (
    AvailabilitySerializer,
    PolicySerializer,
    ReservationCreateSerializer,
    ReservationPatchSerializer,
    ReservationSerializer,
)
from labmgr.reservations.models import Reservation

ERROR = OpenApiResponse(description='`{"detail": "...", "errors": {"field.path": ["..."]}}`')
AVAILABILITY_SPAN = timedelta(days=7)
AVAILABILITY_MAX_SPAN = timedelta(days=62)


class ReservationViewSet(viewsets.GenericViewSet[Reservation]):
    """Reservations. Users see their own, teachers also their students', admins all;
    only the owner or an admin changes one (a teacher gets 403, anyone else 404).
    Cancelling (DELETE) keeps the row, with status `cancelled`."""

    serializer_class = ReservationSerializer
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[Reservation]:
        reservations = selectors.reservation_list_visible(user=acting_user(self.request))
        params = self.request.query_params
        if host := params.get("host"):
            reservations = reservations.filter(host_id=host if host.isdigit() else -1)
        if state := params.get("status"):
            reservations = reservations.filter(status=state)
        return reservations.order_by("start", "id")

    def _changeable(self) -> Reservation:
        reservation = self.get_object()
        permissions.require(self.request.user, Resource.RESERVATION, Action.CHANGE, reservation)
        return reservation

    def _represent(self, reservation: Reservation, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.reservation_list_visible(user=acting_user(self.request)).get(
            pk=reservation.pk
        )
        return Response(self.get_serializer(fresh).data, status=code)

    @extend_schema(
        parameters=[OpenApiParameter("host", int), OpenApiParameter("status", str)],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        request=ReservationCreateSerializer,
        responses={201: ReservationSerializer, 400: ERROR, 403: ERROR, 409: ERROR},
        description="Book a host, whole or a share (cpus, memory, pids), from `start` to "
        "`end`. Refused (409) when the host would be overbooked at any moment of the "
        "window; the message names the bookings in the way.",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = _validated(ReservationCreateSerializer, request.data)
        reservation = services.reservation_book(
            actor=acting_user(request),
            owner=body["owner"],
            host=body["host"],
            start=body["start"],
            end=body["end"],
            share=services.Share(body["whole_host"], body["cpus"], body["memory"], body["pids"]),
            note=body["note"],
            auto_deploy=body["auto_deploy"],
            override=body["override"],
        )
        return self._represent(reservation, status.HTTP_201_CREATED)

    @extend_schema(
        request=ReservationPatchSerializer,
        responses={200: ReservationSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Extend or shorten (`end`), move an upcoming one (`start`), or change "
        "its note. An extension stops at the next booking in the way (409 otherwise).",
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        reservation = self._changeable()
        body = _validated(ReservationPatchSerializer, request.data)
        services.reservation_change(
            reservation=reservation,
            actor=acting_user(request),
            start=body.get("start"),
            end=body.get("end"),
            note=body.get("note"),
            override=body["override"],
        )
        return self._represent(reservation)

    @extend_schema(responses={204: None, 403: ERROR, 404: ERROR, 409: ERROR})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.reservation_cancel(reservation=self._changeable(), actor=acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class HostAvailabilityView(APIView):
    """A host's bookings between `from` and `to` (default: the next 7 days) as busy
    blocks, and what stays free between them. Others' names are shown to teachers and
    admins only."""

    @extend_schema(
        operation_id="hosts_availability",
        parameters=[
            OpenApiParameter("from", str, description="ISO 8601; default now"),
            OpenApiParameter("to", str, description="ISO 8601; default from + 7 days"),
        ],
        responses={200: AvailabilitySerializer, 400: ERROR, 404: ERROR},
    )
    def get(self, request: Request, pk: str) -> Response:
        host = get_object_or_404(Host, pk=int(pk))
        permissions.require(request.user, Resource.HOST, Action.VIEW, host)
        start = _moment(request.query_params.get("from"), "from") or clock.now()
        end = _moment(request.query_params.get("to"), "to") or start + AVAILABILITY_SPAN
        if end <= start:
            raise ApplicationError.for_field("to", "`to` must come after `from`.")
        if end - start > AVAILABILITY_MAX_SPAN:
            raise ApplicationError.for_field("to", "Ask for at most 62 days at a time.")
        return Response(
            selectors.host_availability(user=acting_user(request), host=host, start=start, end=end)
        )


class ReservationPolicyView(APIView):
    """What a user who is not an admin may book (admins may book past it), and how much
    of this week's hours the asking user has left."""

    @extend_schema(operation_id="reservations_policy", responses={200: PolicySerializer})
    def get(self, request: Request) -> Response:
        now = clock.now()
        left = policy.policy_hours_left(owner=acting_user(request), now=now)
        return Response(
            {
                **policy.policy_current().as_dict(),
                "week": policy.week_of(now),
                "hours_left_this_week": None if left is None else left.total_seconds() / 3600,
            }
        )


def _moment(text: str | None, field: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = parse_datetime(text.replace(" ", "+"))  # a "+" in a query string is a space
    except ValueError:
        moment = None
    if moment is None:
        raise ApplicationError.for_field(field, f"{text!r} is not an ISO 8601 date and time.")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _validated(serializer_class: type[Any], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
