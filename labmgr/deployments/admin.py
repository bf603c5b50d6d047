"""Admin of deployments, read only: status changes only through `deployment_transition`."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from labmgr.deployments.models import Deployment, DeploymentStep


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeploymentStepInline(ReadOnlyMixin, admin.TabularInline[DeploymentStep, Deployment]):
    model = DeploymentStep
    fields = readonly_fields = ("seq", "name", "status", "message", "created")
    can_delete = False
    extra = 0


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyMixin, admin.ModelAdmin[Deployment]):
    list_display = ["id", "lab", "owner", "host", "status", "token", "created", "finished"]
    list_filter = ["status", "host", "created"]
    search_fields = ["lab__name", "owner__username", "token"]
    list_select_related = ["lab__owner", "owner", "host"]
    fields = readonly_fields = (
        "lab",
        "owner",
        "host",
        "status",
        "token",
        "created",
        "updated",
        "finished",
        "labfile",
        "plan",
    )
    inlines = [DeploymentStepInline]


@admin.register(DeploymentStep)
class DeploymentStepAdmin(ReadOnlyMixin, admin.ModelAdmin[DeploymentStep]):
    list_display = ["deployment", "seq", "name", "status", "created"]
    list_filter = ["status"]
    search_fields = ["name", "message", "deployment__lab__name"]
    list_select_related = ["deployment__lab"]
