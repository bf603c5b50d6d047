"""The reservation's REST representation and the shapes of its request bodies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labmgr.api.fields import DetailUrl
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.reservations.models import Reservation
from labplan.units import UnitError, parse_size


@extend_schema_field(OpenApiTypes.STR)
class SizeField(serializers.Field[int, Any, int, Any]):
    """Bytes, as a number or a labfile size ("256M", "2G")."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            raise serializers.ValidationError("A size is a number of bytes or like 256M.")
        try:
            return parse_size(data)
        except (UnitError, TypeError) as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: int) -> int:
        return value


class ReservationSerializer(serializers.ModelSerializer[Reservation]):
    url = DetailUrl(view_name="reservation-detail")
    owner = serializers.CharField(source="owner.username", read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)
    booked_by = serializers.CharField(source="booked_by.username", read_only=True, default=None)
    cpus = serializers.DecimalField(max_digits=8, decimal_places=3, coerce_to_string=False)

    class Meta:
        model = Reservation
        fields = [
            "id",
            "url",
            "owner",
            "host",
            "host_name",
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
            "last_error",
            "created",
            "updated",
        ]
        read_only_fields = fields


class ReservationCreateSerializer(serializers.Serializer[Any]):
    host = serializers.PrimaryKeyRelatedField(queryset=Host.objects.all())
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    whole_host = serializers.BooleanField(default=False)
    cpus = serializers.DecimalField(
        max_digits=8, decimal_places=3, min_value=Decimal(0), default=Decimal(0)
    )
    memory = SizeField(default=0)
    pids = serializers.IntegerField(min_value=0, default=0)
    note = serializers.CharField(max_length=200, allow_blank=True, default="")
    auto_deploy = serializers.PrimaryKeyRelatedField(
        queryset=Lab.objects.all(), allow_null=True, default=None
    )
    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        default=None,
        help_text="admins only: book for this user",
    )
    override = serializers.BooleanField(default=False, help_text="admins only")


class ReservationPatchSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    note = serializers.CharField(max_length=200, allow_blank=True, required=False)
    override = serializers.BooleanField(default=False, help_text="admins only")


class BlockSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(allow_null=True, help_text="yours (or all, for admins)")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    mine = serializers.BooleanField()
    owner = serializers.CharField(allow_null=True, help_text="for teachers and admins")
    whole_host = serializers.BooleanField()
    cpus = serializers.FloatField()
    memory = serializers.IntegerField()
    pids = serializers.IntegerField()


class FreeSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    whole_host_free = serializers.BooleanField()
    cpus = serializers.FloatField()
    memory = serializers.IntegerField()
    pids = serializers.IntegerField()


class AmountSerializer(serializers.Serializer[Any]):
    cpus = serializers.FloatField()
    memory = serializers.IntegerField()
    pids = serializers.IntegerField()


class AvailabilitySerializer(serializers.Serializer[Any]):
    host = serializers.IntegerField()
    capacity = AmountSerializer()
    blocks = BlockSerializer(many=True)
    free = FreeSerializer(many=True)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        # "from" is a Python keyword: declared here rather than as an attribute.
        fields["from"] = serializers.DateTimeField()
        fields["to"] = serializers.DateTimeField()
        return fields


class PolicySerializer(serializers.Serializer[Any]):
    max_hours = serializers.IntegerField(allow_null=True, help_text="the longest booking")
    max_days_ahead = serializers.IntegerField(allow_null=True, help_text="how far ahead")
    weekly_hours = serializers.IntegerField(allow_null=True, help_text="hours per user a week")
    max_bookings = serializers.IntegerField(allow_null=True, help_text="bookings not ended yet")
    week = serializers.DateTimeField(help_text="this week's Monday, 00:00 UTC")
    hours_left_this_week = serializers.FloatField(allow_null=True)
