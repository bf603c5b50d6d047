"""Where a lab's nodes go, and whether those hosts can take it: online, with the underlay
addresses its overlay networks need, the kernel features its plan needs, and room in the
actor's reservation of each host (the budget its agent then holds the deployment to).

Each check raises the refusal a user reads (`Conflict`, `ApplicationError` naming the
field); `labmgr.deployments.lifecycle` runs them before it sends anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db.models import Count

from labmgr.accounts import selectors as accounts
from labmgr.accounts.services import quota_check_deploy
from labmgr.deployments.choices import KEPT_STATES
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError, Conflict
from labmgr.hosts.choices import HostStatus
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.reservations import clock as reservation_clock
from labmgr.reservations.selectors import reservation_active_for
from labmgr.reservations.services import deployment_budget, reservation_check_deploy
from labplan import codec, features
from labplan import labfile as labfile_module
from labplan.feature_fields import fields_needing
from labplan.messages import Budget
from labplan.model import Labfile


def hosts_choose(labfile: Labfile, *, actor: User, running_on: Host | None = None) -> list[Host]:
    """The hosts the lab's nodes are placed on: first the host named by the first node (by
    name) that names one, where nodes naming none run, then the others by slug. When no
    node names a host: the host it runs on (a redeploy), else `_default_host`."""
    named: dict[str, str] = {}  # slug -> the first node naming it
    for node in labfile.nodes:  # sorted by name
        if node.host:
            named.setdefault(node.host, node.name)
    if not named:
        return [running_on or _default_host(actor)]
    found = {h.slug: h for h in Host.objects.filter(slug__in=list(named))}
    errors = {
        f"nodes.{node}.host": [f"There is no host {slug!r}."]
        for slug, node in named.items()
        if slug not in found
    }
    if errors:
        raise ApplicationError("The lab places nodes on hosts that do not exist.", errors)
    first, *others = (host_require_online(found[slug]) for slug in named)
    return [first, *sorted(others, key=lambda h: h.slug)]


def _default_host(actor: User) -> Host:
    """Where a lab naming no host goes: an online host the actor holds a reservation of
    now (a booking is where they mean to work), else the online host running the fewest
    labs; ties by name."""
    online = list(Host.objects.filter(status=HostStatus.ONLINE).order_by("name", "id"))
    if not online:
        raise Conflict.for_field("host", "No host is online to deploy on.")
    now = reservation_clock.now()
    for host in online:
        if reservation_active_for(user=actor, host=host, at=now) is not None:
            return host
    running = dict(
        Deployment.objects.filter(host__in=online, status__in=sorted(KEPT_STATES))
        .values_list("host")
        .annotate(n=Count("id"))
    )
    return min(online, key=lambda host: running.get(host.pk, 0))


def host_require_online(host: Host | None) -> Host:
    if host is None or host.status != HostStatus.ONLINE:
        raise Conflict.for_field("host", f"Host {host or '(none)'} is offline.")
    return host


def hosts_require_underlay(labfile: Labfile, hosts: Sequence[Host]) -> None:
    """Refuse an overlay network spanning hosts one of which has no underlay address:
    the others could not reach its VXLAN."""
    if len(hosts) < 2:
        return
    by_slug = {h.slug: h for h in hosts}
    node_host = {n.name: n.host or hosts[0].slug for n in labfile.nodes}
    errors: dict[str, list[str]] = {}
    for net in labfile.networks:
        if net.driver != "overlay":
            continue
        spans = sorted(
            {node_host[n.name] for n in labfile.nodes for a in n.networks if a.network == net.name}
        )
        lacking = [slug for slug in spans if by_slug[slug].underlay_address is None]
        if len(spans) > 1 and lacking:
            errors[f"networks.{net.name}"] = [
                f"Overlay network {net.name} spans hosts {', '.join(spans)}, but host "
                f"{', '.join(lacking)} has no underlay address: an admin sets it on the host, "
                "or its agent reports it (LABMGR_AGENT_UNDERLAY)."
            ]
    if errors:
        raise ApplicationError("A host of the lab has no underlay address.", errors)


def hosts_require_features(hosts: Sequence[Host], deployment: Deployment) -> None:
    """Refuse a plan whose part on a host needs a kernel feature the host lacks."""
    plan = deployment.compiled or codec.plan_from_dict(deployment.plan)
    by_slug = {h.slug: h for h in hosts}
    for host_plan in plan.hosts:
        host = by_slug.get(host_plan.host, hosts[0])
        if missing := features.missing(host.facts or {}, host_plan):
            message = f"Host {host} lacks {', '.join(missing)}, which this lab needs."
            # Each field of the labfile that asks for what the host lacks, by its path.
            lab = labfile_module.validate(deployment.labfile)
            errors = {"host": [message]}
            for feature in missing:
                for path in fields_needing(lab, feature):
                    errors.setdefault(path, []).append(
                        f"Host {host} lacks {feature}, which this field needs."
                    )
            raise ApplicationError(message, errors)


def hosts_require_budgets(
    actor: User, hosts: Sequence[Host], lab: Lab, labfile: Labfile
) -> dict[str, Budget | None]:
    """Inside an active reservation of each host whose share the lab's nodes there fit,
    and within the actor's quotas (admins are exempt from both). Returns, per host slug,
    the budget its agent holds the deployment to: the share of the reservation it was
    accepted under; for a whole-host booking, outside reservations and for admins (whom
    no share binds), what labs may use of the host, its capacity less its reserve."""
    if len(hosts) == 1:
        reservations = {hosts[0].slug: reservation_check_deploy(user=actor, host=hosts[0], lab=lab)}
    else:
        reservations = {
            host.slug: reservation_check_deploy(
                user=actor, host=host, lab=_part_on(labfile, host, hosts[0]), replacing=lab
            )
            for host in hosts
        }
    quota_check_deploy(user=actor, lab=labfile)
    admin = accounts.user_is_admin(user=actor)
    return {
        host.slug: deployment_budget(
            host=host, reservation=None if admin else reservations[host.slug]
        )
        for host in hosts
    }


def _part_on(labfile: Labfile, host: Host, first: Host) -> Labfile:
    """The lab's nodes placed on `host` (nodes that name no host are on `first`)."""
    nodes = tuple(n for n in labfile.nodes if (n.host or first.slug) == host.slug)
    return dataclasses.replace(labfile, nodes=nodes)
