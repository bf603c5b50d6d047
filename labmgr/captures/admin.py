"""Admin of captures, read only: they change only through what agents report."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from labmgr.captures.models import Capture

_COLUMNS = ("id", "deployment", "node", "interface", "state", "packets", "bytes", "created")


@admin.register(Capture)
class CaptureAdmin(admin.ModelAdmin[Capture]):
    list_display = _COLUMNS
    list_filter = ["state"]
    fields = readonly_fields = (
        *_COLUMNS,
        "filter",
        "max_bytes",
        "max_seconds",
        "reason",
        "finished",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Capture]:
        return super().get_queryset(request).defer("pcap")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
