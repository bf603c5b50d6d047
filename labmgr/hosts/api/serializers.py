"""The host's REST representation: read only but for `underlay`, which admins set."""

from __future__ import annotations

from rest_framework import serializers

from labmgr.api.fields import DetailUrl
from labmgr.hosts.models import Host


class HostSerializer(serializers.ModelSerializer[Host]):
    url = DetailUrl(view_name="host-detail")
    queue = serializers.CharField(read_only=True)
    # What the agent reports unless an admin set `underlay`: the address in use.
    underlay_address = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Host
        fields = [
            "id",
            "url",
            "name",
            "slug",
            "queue",
            "status",
            "cpus",
            "memory",
            "pids",
            "underlay",
            "underlay_address",
            "facts",
            "last_seen",
            "created",
            "updated",
        ]
        read_only_fields = [f for f in fields if f != "underlay"]
