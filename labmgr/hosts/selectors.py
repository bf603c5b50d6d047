"""Reads on hosts: every logged-in user may see every host."""

from __future__ import annotations

from django.db.models import QuerySet

from labmgr.hosts.models import Host


def host_list() -> QuerySet[Host]:
    return Host.objects.order_by("name")
