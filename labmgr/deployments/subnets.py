"""The subnet check of a deploy or redeploy: every subnet of the lab inside the admin's
pool, and each subnet a host will route for it (a network with its gateway on that host)
clear of that host's own routes and addresses, as its agent reported them, and of the
subnets other labs kept on that host route. The agent checks again before it builds.

Another user's lab is never named to a plain user: "another running lab on host X".
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_network

from django.contrib.auth.models import User
from django.db.models import Q

from labmgr.accounts.selectors import user_is_admin
from labmgr.deployments.choices import KEPT_STATES
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host
from labmgr.labs.subnets import lab_subnet_errors
from labplan import codec, subnets
from labplan.model import Labfile


def deployment_check_subnets(
    *, deployment: Deployment, labfile: Labfile, hosts: Sequence[Host], actor: User
) -> None:
    """Raise a 400 naming `networks.<name>.subnet` for each subnet of the compiled
    deployment that is outside the pool or would shadow something on its host."""
    errors: dict[str, list[str]] = {}
    for error in lab_subnet_errors(labfile):
        errors.setdefault(error.path, []).append(error.message)
    plan = deployment.compiled or codec.plan_from_dict(deployment.plan)
    by_slug = {h.slug: h for h in hosts}
    names = {
        ip_network(subnet): f"networks.{n.name}.{key}"
        for n in labfile.networks
        for key, subnet in (("subnet", n.subnet), ("subnet6", n.subnet6))
        if subnet
    }
    for host_plan in plan.hosts:
        routed = [s for s in subnets.routed_subnets(host_plan) if s in names]
        if not routed:
            continue
        host = by_slug.get(host_plan.host, hosts[0])
        facts = host.facts or {}
        routes = subnets.routes_from(facts.get("routes"))
        addresses = subnets.addresses_from(facts.get("addresses"))
        others = _routed_by_others(host, deployment)
        for subnet in routed:
            path = names[subnet]
            if path in errors:
                continue
            if problem := subnets.host_conflict(subnet, routes, addresses):
                message = f"{problem} on host {host}; choose another subnet."
            elif clash := next(
                ((s, d) for s, d in others if s.version == subnet.version and subnet.overlaps(s)),
                None,
            ):
                message = f"{subnet} overlaps {clash[0]} of {_lab_named(clash[1], actor, host)}"
                message += "; choose another subnet."
            else:
                continue
            errors[path] = [message]
    if errors:
        raise ApplicationError("A subnet of the lab cannot be used on its host.", errors)


def _routed_by_others(
    host: Host, deployment: Deployment
) -> list[tuple[subnets.IPNetwork, Deployment]]:
    """The subnets the other labs' deployments that may hold kernel objects on `host`
    route there (a deployment of the same lab is the one being replaced)."""
    others = (
        Deployment.objects.filter(Q(host=host) | Q(placements__host=host))
        .filter(status__in=sorted(KEPT_STATES))
        .exclude(lab_id=deployment.lab_id)
        .select_related("lab")
        .distinct()
    )
    return [
        (subnet, other)
        for other in others
        if isinstance(other.plan, dict)
        for subnet in subnets.routed_subnets_of_dict(other.plan, host.slug)
    ]


def _lab_named(other: Deployment, actor: User, host: Host) -> str:
    """The other lab as the actor may know it: by name to its owner and to admins."""
    if user_is_admin(user=actor) or other.owner_id == getattr(actor, "pk", None):
        return f"lab {other.lab.name!r} (deployment #{other.pk}) on host {host}"
    return f"another running lab on host {host}"
