"""The host's REST representation (read only)."""

from __future__ import annotations

from rest_framework import serializers

from labmgr.hosts.models import Host


class HostSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="host-detail")
    queue = serializers.CharField(read_only=True)

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
            "facts",
            "last_seen",
            "created",
            "updated",
        ]
        read_only_fields = fields
