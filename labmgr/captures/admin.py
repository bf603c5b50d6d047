"""Admin of captures, read only: they change only through what agents report."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from labmgr.captures.models import Capture


@admin.register(Capture)
class CaptureAdmin(admin.ModelAdmin):
    list_display = ["id", "deployment", "node", "interface", "state", "packets", "bytes", "created"]
    list_filter = ["state"]
    fields = [*list_display, "filter", "max_bytes", "max_seconds", "reason", "finished"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("pcap")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
