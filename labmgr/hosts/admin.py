"""Admin of hosts: admins register hosts (each gets the key its agent signs with, shown
with the command that installs it) and rotate keys; status and facts are what agents
report."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from labmgr.errors import ApplicationError
from labmgr.hosts import trust
from labmgr.hosts.models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin[Host]):
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
        "agent_key",
        "facts",
    ]
    readonly_fields = ["status", "last_seen", "agent_key", "facts"]
    actions = ["rotate_key"]

    @admin.display(description="agent key")
    def agent_key(self, host: Host) -> str:
        if not host.pk or not host.key:
            return "made when the host is saved"
        pending = " (a rotation waits for the agent to confirm)" if host.next_key else ""
        rotated = f"; rotated {host.key_rotated:%Y-%m-%d %H:%M} UTC" if host.key_rotated else ""
        return f"install on the host, as root: {trust.install_command(host)}{pending}{rotated}"

    def save_model(self, request: HttpRequest, obj: Host, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not obj.key:
            trust.host_register(slug=obj.slug, name=obj.name)
            obj.refresh_from_db()

    @admin.action(description="Rotate the key (sent to the running agent, wrapped)")
    def rotate_key(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        for host in queryset:
            try:
                trust.host_key_rotate(host=host)
            except ApplicationError as exc:
                self.message_user(request, f"{host}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{host}: a new key is on its way to its agent.")
