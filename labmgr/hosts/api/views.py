"""REST views of hosts: every logged-in user sees every host; only admins change one
(its `underlay` address, with PATCH)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, viewsets

from labmgr.accounts.selectors import user_is_admin
from labmgr.errors import NotAllowed
from labmgr.hosts.api.serializers import HostSerializer
from labmgr.hosts.models import Host
from labmgr.hosts.selectors import host_list


class HostViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet[Host]):
    serializer_class = HostSerializer
    lookup_value_regex = "[0-9]{1,18}"
    http_method_names = ["get", "patch", "head", "options"]

    def update(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not user_is_admin(user=request.user):
            raise NotAllowed("Only an admin may change a host.")
        return super().update(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Host]:
        return host_list()
