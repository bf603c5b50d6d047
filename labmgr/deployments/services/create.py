"""A deployment's record: creating it with its compiled plan, compiling it again for a
redeploy (VNIs and underlay addresses included), and appending to its step log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max

from labmgr.deployments.choices import StepStatus
from labmgr.deployments.models import Deployment, DeploymentHost, DeploymentStep, VniAllocation
from labmgr.errors import Conflict
from labmgr.hosts.models import Host
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labplan import codec, compiler, naming
from labplan import labfile as labfile_module
from labplan.model import Labfile

LOCAL_HOST = "local"
# Automatic VNIs start above the small numbers people pick by hand in labfiles.
VNI_FIRST = 100_000
VNI_LAST = 2**24 - 1


def deployment_create(
    *,
    lab: Lab,
    owner: User,
    host: Host | None = None,
    labfile: Labfile | None = None,
    hosts: Sequence[Host] = (),
) -> Deployment:
    """A PENDING deployment holding a snapshot of the lab's labfile and its compiled plan,
    placed on `hosts` (default: `host` alone); `host` is the first of them, where nodes
    that name no host run.

    The plan names every kernel object after the deployment's id, so the row is created
    first and the plan filled in within the same transaction.
    """
    labfile = labfile or spec.lab_to_labfile(lab)
    placed = list(hosts) or ([host] if host else [])
    with transaction.atomic():
        deployment = Deployment.objects.create(lab=lab, owner=owner, host=host)
        DeploymentHost.objects.bulk_create(
            DeploymentHost(deployment=deployment, host=h) for h in placed
        )
        deployment.token = naming.deployment_token(deployment.pk)
        deployment_compile(deployment=deployment, labfile=labfile, hosts=placed)
        deployment.save(update_fields=["token", "labfile", "plan", "indexes", "updated"])
        names = ", ".join(str(h) for h in placed) or LOCAL_HOST
        deployment_step_add(
            deployment=deployment,
            name="created",
            status=StepStatus.SUCCEEDED,
            message=f"Plan compiled for {names}.",
        )
    return deployment


def deployment_compile(
    *, deployment: Deployment, labfile: Labfile, hosts: Sequence[Host] | None = None
) -> None:
    """Fill in the deployment's snapshot and plan from `labfile` (not saved), for the
    `hosts` it is placed on (default: its first host alone). Overlay networks keep the
    VNIs they hold and new ones get free VNIs; nodes and networks keep their kernel names;
    images the deployment ran before are pinned to the digests it recorded (a redeploy runs
    the same image, whatever the registry's tag now names); call inside a transaction."""
    host = deployment.host
    previous = compiler.Indexes.from_dict(deployment.indexes) if deployment.indexes else None
    indexes = compiler.assign_indexes(labfile, previous)
    plan = compiler.compile_plan(
        labfile,
        deployment=deployment.pk,
        default_host=host.slug if host else LOCAL_HOST,
        underlay=underlay_addresses(hosts if hosts is not None else [host] if host else []),
        vnis=vni_allocate(deployment=deployment, labfile=labfile),
        indexes=indexes,
        images=dict(deployment.images or {}),
    )
    deployment.labfile = labfile_module.dump(labfile)
    deployment.plan = codec.plan_to_dict(plan)
    deployment.indexes = indexes.as_dict()
    deployment.compiled = plan


def underlay_addresses(hosts: Sequence[Host]) -> dict[str, str]:
    """Each host's VXLAN underlay address, for the hosts that have one."""
    return {h.slug: address for h in hosts if (address := h.underlay_address)}


def vni_allocate(*, deployment: Deployment, labfile: Labfile) -> dict[str, int]:
    """The VNI of each overlay network: the labfile's own, else the one the deployment
    already holds, else the lowest free one. Refused when another deployment holds it."""
    overlays = {n.name: n for n in labfile.networks if n.driver == "overlay"}
    held = dict(VniAllocation.objects.filter(deployment=deployment).values_list("network", "vni"))
    VniAllocation.objects.filter(deployment=deployment).exclude(network__in=overlays).delete()
    wanted = {name: net.vni or held.get(name) for name, net in overlays.items()}
    taken = set(VniAllocation.objects.exclude(deployment=deployment).values_list("vni", flat=True))
    for name, vni in wanted.items():
        if vni is not None and vni in taken:
            raise Conflict.for_field(
                f"networks.{name}.vni", f"VNI {vni} is in use by another deployment."
            )
    free = (v for v in range(VNI_FIRST, VNI_LAST + 1) if v not in taken)
    used = {v for v in wanted.values() if v is not None}
    result: dict[str, int] = {}
    for name in sorted(wanted):
        vni = wanted[name]
        if vni is None:
            vni = next(v for v in free if v not in used)
            used.add(vni)
        result[name] = vni
        if held.get(name) != vni:
            VniAllocation.objects.update_or_create(
                deployment=deployment, network=name, defaults={"vni": vni}
            )
    return result


def deployment_step_add(
    *,
    deployment: Deployment,
    name: str,
    status: StepStatus,
    message: str = "",
    **agent_fields: Any,
) -> DeploymentStep:
    """Append a step to the deployment's log; call inside a transaction holding its lock
    when several writers may log at once."""
    last = deployment.steps.aggregate(last=Max("seq"))["last"]
    return DeploymentStep.objects.create(
        deployment=deployment,
        seq=(last or 0) + 1,
        name=name,
        status=status,
        message=message,
        **agent_fields,
    )
