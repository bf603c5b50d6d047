"""Admin of hosts: admins register hosts; status and facts are what agents report."""

from __future__ import annotations

from django.contrib import admin

from labmgr.hosts.models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "queue", "status", "cpus", "memory", "pids", "last_seen"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fields = [
        "name",
        "slug",
        "cpus",
        "memory",
        "pids",
        "underlay",
        "status",
        "last_seen",
        "facts",
    ]
    readonly_fields = ["status", "last_seen", "facts"]
