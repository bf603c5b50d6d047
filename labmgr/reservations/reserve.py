"""A host's reserve: what labs never get of its machine, kept for labmgr itself (agent,
web, database) and the host's own processes; and what is left for labs (`host_limits`),
which bounds both the shares booked of the host and a deployment that holds all of it.

The machine is what the host's agent reports (`facts["capacity"]`); the reserve is the
host's `HostReserve` row, each kind left empty falling back to LABMGR_HOST_RESERVE_*
(a number, a size, or a percentage of the machine's).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django.conf import settings

from labmgr.hosts.models import Host
from labmgr.reservations.models import HostReserve
from labplan.units import parse_size

KINDS = ("cpus", "memory", "pids")
MILLI = Decimal("0.001")


@dataclass(frozen=True)
class Limits:
    """CPUs, bytes of memory and processes labs may use of a host; None: not known."""

    cpus: Decimal | None
    memory: int | None
    pids: int | None


def host_machine(host: Host) -> dict[str, Decimal | None]:
    """The machine's CPUs, memory and process ids as its agent last reported them; None
    for a kind it did not report."""
    reported = (host.facts or {}).get("capacity")
    reported = reported if isinstance(reported, dict) else {}
    machine: dict[str, Decimal | None] = {}
    for kind in KINDS:
        value = reported.get(kind)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        machine[kind] = Decimal(str(value)) if ok else None
    return machine


def host_reserve(host: Host, machine: dict[str, Decimal | None]) -> dict[str, Decimal]:
    """What the host keeps back of each kind: its own reserve, else the setting's (a
    percentage of the machine counts only once the machine is known)."""
    try:
        row: HostReserve | None = host.reserve  # kept on the host object once read
    except HostReserve.DoesNotExist:
        row = None
    kept: dict[str, Decimal] = {}
    for kind in KINDS:
        own = getattr(row, kind) if row is not None else None
        kept[kind] = Decimal(own) if own is not None else _setting(kind, machine[kind])
    return kept


def host_limits(host: Host) -> Limits:
    """What labs may use of `host`, per kind: its capacity (`Host.cpus`, `memory`,
    `pids`: what it offers labs), and never more than its machine minus its reserve;
    None where neither is known. 0 when the reserve holds all of the machine."""
    machine = host_machine(host)
    reserve = host_reserve(host, machine) if any(machine.values()) else {}
    left: dict[str, Decimal | None] = {}
    for kind in KINDS:
        offer = Decimal(getattr(host, kind)) or None
        whole = machine[kind]
        free = max(whole - reserve[kind], Decimal(0)) if whole is not None else None
        known = [v for v in (offer, free) if v is not None]
        left[kind] = min(known) if known else None
    cpus, memory, pids = (left[k] for k in KINDS)
    return Limits(
        cpus.quantize(MILLI, rounding=ROUND_DOWN) if cpus is not None else None,
        int(memory) if memory is not None else None,
        int(pids) if pids is not None else None,
    )


def _setting(kind: str, machine: Decimal | None) -> Decimal:
    text = str(getattr(settings, f"LABMGR_HOST_RESERVE_{kind.upper()}")).strip()
    if text.endswith("%"):
        return Decimal(text[:-1]) / 100 * machine if machine is not None else Decimal(0)
    return Decimal(parse_size(text)) if kind == "memory" else Decimal(text)
