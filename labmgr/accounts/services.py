"""Writes about users: roles and quotas, classes, templates published to a class and the
copies members get; and the quota check a deployment must pass."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction

from labmgr.accounts import selectors
from labmgr.accounts.choices import Role
from labmgr.accounts.models import Classroom, LabTemplate, Profile, TemplateCopy
from labmgr.deployments.choices import ACTIVE_STATES
from labmgr.deployments.models import Deployment
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.labs import services as lab_services
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labplan import labfile as labfile_module
from labplan.model import Labfile
from labplan.units import format_size

# --- roles and quotas -------------------------------------------------------------------


def profile_set(
    *,
    user: User,
    role: str | None = None,
    max_deployments: int | None = None,
    max_cpus: Decimal | float | None = None,
    max_memory: int | None = None,
    max_pids: int | None = None,
) -> Profile:
    """Set the user's role (teacher or user) and quotas (None: unlimited)."""
    profile, _ = Profile.objects.get_or_create(user=user)
    if role is not None:
        if role not in (Role.TEACHER, Role.USER):
            raise ApplicationError.for_field("role", "A profile's role is teacher or user.")
        profile.role = role
    profile.max_deployments = max_deployments
    profile.max_cpus = None if max_cpus is None else Decimal(str(max_cpus))
    profile.max_memory = max_memory
    profile.max_pids = max_pids
    profile.full_clean()
    profile.save()
    return profile


@dataclass(frozen=True)
class Usage:
    """What a set of labs asks for: CPUs, bytes of memory, processes; and which nodes set
    no limit of a kind (so the sum says nothing about them)."""

    cpus: Decimal = Decimal(0)
    memory: int = 0
    pids: int = 0
    unlimited: tuple[tuple[str, str], ...] = ()  # (node path, "cpus"|"memory"|"pids")

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpus + other.cpus,
            self.memory + other.memory,
            self.pids + other.pids,
            self.unlimited + other.unlimited,
        )


def labfile_usage(labfile: Labfile) -> Usage:
    """The sum of the lab's node limits."""
    usage = Usage()
    for node in labfile.nodes:
        limits = node.limits
        missing = tuple(
            (f"nodes.{node.name}.limits.{kind}", kind)
            for kind, value in (
                ("cpus", limits.cpus),
                ("memory", limits.memory),
                ("pids", limits.pids),
            )
            if value is None
        )
        usage = usage + Usage(
            Decimal(str(limits.cpus or 0)), limits.memory or 0, limits.pids or 0, missing
        )
    return usage


def deployments_usage(deployments: Iterable[Any]) -> Usage:
    """The sum of the node limits of deployments (from each one's labfile snapshot)."""
    usage = Usage()
    for deployment in deployments:
        if deployment.labfile:
            usage = usage + labfile_usage(labfile_module.validate(deployment.labfile))
    return usage


def as_labfile(lab: Lab | Labfile) -> Labfile:
    return lab if isinstance(lab, Labfile) else spec.lab_to_labfile(lab)


def quota_check_deploy(*, user: User, lab: Lab | Labfile) -> None:
    """Refuse (403) a deployment that would take the user past a quota: deployments at
    once, or the CPUs, memory or processes of all their running labs together. A node
    without a limit of a kind the user has a quota for is refused too: it could take any
    amount. Admins have no quota."""
    if selectors.user_is_admin(user=user):
        return
    profile = selectors.user_profile(user=user)
    if profile is None:
        return
    running = Deployment.objects.filter(owner=user, status__in=sorted(ACTIVE_STATES))
    errors: dict[str, list[str]] = {}
    if profile.max_deployments is not None and running.count() + 1 > profile.max_deployments:
        errors["deployments"] = [
            f"Your quota is {profile.max_deployments} deployment(s) at once; destroy one first."
        ]
    new = labfile_usage(as_labfile(lab))
    total = deployments_usage(running) + new
    quotas = {"cpus": profile.max_cpus, "memory": profile.max_memory, "pids": profile.max_pids}
    for kind, quota in quotas.items():
        if quota is None:
            continue
        for path, missing in new.unlimited:
            if missing == kind:
                errors.setdefault(path, []).append(
                    f"Your {kind} quota needs every node to set a {kind} limit."
                )
        if getattr(total, kind) > quota:
            errors.setdefault(f"limits.{kind}", []).append(
                f"Your labs would use {_amount(kind, getattr(total, kind))} of {kind} "
                f"together; your quota is {_amount(kind, quota)}."
            )
    if errors:
        raise NotAllowed("The deployment is over your quota.", errors)


def _amount(kind: str, value: Any) -> str:
    """A quantity as people write it in a labfile: 1.5 CPUs, 256M, 100 processes."""
    if kind == "memory":
        return str(format_size(int(value)))
    return f"{Decimal(value).normalize():f}" if kind == "cpus" else str(value)


# --- classes and templates --------------------------------------------------------------


def classroom_create(*, name: str, teacher: User, members: Iterable[User] = ()) -> Classroom:
    """A class: a new group `name` taught by `teacher` (who gets the teacher role)."""
    with transaction.atomic():
        if Group.objects.filter(name=name).exists():
            raise ApplicationError.for_field("name", f"A group named {name!r} already exists.")
        group = Group.objects.create(name=name)
        classroom = Classroom.objects.create(group=group, teacher=teacher)
        group.user_set.add(*members)
        if not selectors.user_is_admin(user=teacher):
            Profile.objects.update_or_create(user=teacher, defaults={"role": Role.TEACHER})
    return classroom


def template_publish(*, actor: User, classroom: Classroom, lab: Lab) -> LabTemplate:
    """Publish the actor's lab to a class they teach (admins: any lab, any class)."""
    admin = selectors.user_is_admin(user=actor)
    if not admin and classroom.teacher_id != actor.pk:
        raise NotAllowed(f"Only the teacher of {classroom} may publish to it.")
    if not admin and lab.owner_id != actor.pk:
        raise NotAllowed("Only your own labs can be published.")
    template, _ = LabTemplate.objects.get_or_create(
        classroom=classroom, lab=lab, defaults={"published_by": actor}
    )
    return template


def template_copy(*, template: LabTemplate, member: User, actor: User) -> TemplateCopy:
    """Give `member` their own copy of the template's lab, as it is now. The member asks
    for themself; the class's teacher or an admin may ask for any member."""
    classroom = template.classroom
    if not classroom.group.user_set.filter(pk=member.pk).exists():
        raise ApplicationError.for_field("member", f"{member} is not in {classroom}.")
    may_act = actor.pk in (member.pk, classroom.teacher_id) or selectors.user_is_admin(user=actor)
    if not may_act:
        raise NotAllowed(f"Only {member} or the teacher of {classroom} may copy it for them.")
    if existing := TemplateCopy.objects.filter(template=template, user=member).first():
        raise Conflict(
            f"{member} already has a copy of {template.lab.name!r}: {existing.lab.name!r}."
        )
    tree = labfile_module.dump(spec.lab_to_labfile(template.lab))
    with transaction.atomic():
        # Who asks decides which admin-only fields the copy may hold, never the template's
        # author: a member copying an admin's template is refused its host powers.
        lab = lab_services.lab_create(owner=member, labfile_tree=tree, actor=actor)
        return TemplateCopy.objects.create(template=template, user=member, lab=lab)


def template_copy_for_class(*, template: LabTemplate, actor: User) -> list[TemplateCopy]:
    """A copy for every member of the class who has none yet (the teacher's one click).
    Members whose copy fails (e.g. a lab of that name already) are skipped; the copies
    made are returned."""
    classroom = template.classroom
    if classroom.teacher_id != actor.pk and not selectors.user_is_admin(user=actor):
        raise NotAllowed(f"Only the teacher of {classroom} may copy for the whole class.")
    have = TemplateCopy.objects.filter(template=template).values("user_id")
    members = classroom.group.user_set.exclude(pk__in=have).exclude(pk=classroom.teacher_id)
    copies = []
    for member in members.order_by("username"):
        try:
            copies.append(template_copy(template=template, member=member, actor=actor))
        except ApplicationError:
            continue
    return copies
