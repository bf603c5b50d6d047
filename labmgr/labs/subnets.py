"""The admin's lab subnet pool (LABMGR_LAB_SUBNET_POOL) and the check every saved and
deployed lab passes: each subnet inside the pool, none in a range no lab may use
(`labplan.subnets`)."""

from __future__ import annotations

import functools
from ipaddress import IPv4Network

from django.conf import settings

from labplan import subnets
from labplan.errors import FieldError
from labplan.model import Labfile


def lab_subnet_pool() -> tuple[IPv4Network, ...]:
    """The pool as the settings say it now (a test may change them)."""
    return _parsed(str(settings.LABMGR_LAB_SUBNET_POOL))


@functools.cache
def _parsed(text: str) -> tuple[IPv4Network, ...]:
    return subnets.parse_pool(text)


def lab_subnet_errors(labfile: Labfile) -> list[FieldError]:
    """Each subnet of the lab outside the pool or in a reserved range, by field."""
    return subnets.pool_errors(labfile, lab_subnet_pool())
