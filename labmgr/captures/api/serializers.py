"""A capture's REST representation and the body that starts one."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.reverse import reverse

from labmgr.captures.models import Capture


class CaptureSerializer(serializers.ModelSerializer[Capture]):
    pcap_url = serializers.SerializerMethodField()

    class Meta:
        model = Capture
        fields = [
            "id",
            "deployment",
            "node",
            "interface",
            "filter",
            "max_bytes",
            "max_seconds",
            "state",
            "packets",
            "bytes",
            "reason",
            "created",
            "finished",
            "pcap_url",
        ]
        read_only_fields = fields

    def get_pcap_url(self, capture: Capture) -> str | None:
        """Where the file downloads from, once there is one."""
        if not getattr(capture, "has_pcap", False):
            return None
        return reverse(
            "capture-pcap",
            kwargs={"pk": capture.deployment_id, "cid": capture.pk},
            request=self.context.get("request"),
        )


class CaptureStartSerializer(serializers.Serializer[Any]):
    node = serializers.CharField(max_length=64)
    interface = serializers.CharField(max_length=15)
    filter = serializers.CharField(required=False, allow_blank=True, default="", max_length=2048)
    max_bytes = serializers.IntegerField(required=False, min_value=1)
    max_seconds = serializers.IntegerField(required=False, min_value=1)
