"""Read-only REST views of hosts; every logged-in user sees every host."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import viewsets

from labmgr.hosts.api.serializers import HostSerializer
from labmgr.hosts.models import Host
from labmgr.hosts.selectors import host_list


class HostViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = HostSerializer
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[Host]:
        return host_list()
