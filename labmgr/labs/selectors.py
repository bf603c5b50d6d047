"""Reads on labs: which labs a user may see or change, export, and plan preview."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypedDict

from django.contrib.auth.models import Group, User
from django.db.models import F, Prefetch, QuerySet

from labmgr.accounts import permissions
from labmgr.accounts.selectors import user_is_admin
from labmgr.deployments.choices import FINISHED_STATES
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labplan import codec, compiler, render
from labplan import labfile as labfile_module

# The plan preview is compiled as if for deployment 1: real deployments get their own id.
PREVIEW_DEPLOYMENT = 1


class PlanPreview(TypedDict):
    plan: dict[str, Any]
    commands: list[str]


def lab_list_visible(*, user: User) -> QuerySet[Lab]:
    """Labs the user owns, that are shared with one of their groups or belong to a student
    of a class they teach; all for admins."""
    # Rows are not prefetched: the representation reads the cached document.
    labs = Lab.objects.select_related("owner").prefetch_related(
        Prefetch("shared_with", queryset=Group.objects.only("name"), to_attr="shared_groups")
    )
    return permissions.labs_visible(user, labs).order_by("name", "id")


def lab_page_visible(*, user: User) -> QuerySet[Lab]:
    """The visible labs, in the list's order, with no more than a page of the API's list
    reads: the owner's name (`owner_name`), not a user object per lab. Pass the page to
    `lab_attach_group_names`."""
    labs = Lab.objects.annotate(owner_name=F("owner__username"))
    return permissions.labs_visible(user, labs).order_by("name", "id")


def lab_attach_group_names(labs: Sequence[Lab]) -> None:
    """Set `shared_group_names` on each lab: the sorted names of the groups it is shared
    with, read in one query of names (Django's prefetch makes a group object per row)."""
    names: defaultdict[int, list[str]] = defaultdict(list)
    through = Lab.shared_with.through.objects.filter(lab_id__in=[lab.pk for lab in labs])
    for lab_id, name in through.values_list("lab_id", "group__name"):
        names[lab_id].append(name)
    for lab in labs:
        lab.shared_group_names = sorted(names[lab.pk])  # type: ignore[attr-defined]


def lab_get_visible(*, user: User, pk: int) -> Lab:
    """The lab if the user may see it; raises Lab.DoesNotExist otherwise (never tells apart
    "absent" from "not yours")."""
    return lab_list_visible(user=user).get(pk=pk)


def lab_can_change(*, user: User, lab: Lab) -> bool:
    """Owners and admins change a lab; group members it is shared with only read it."""
    return bool(lab.owner_id == user.pk or user_is_admin(user=user))


def lab_has_live_deployments(*, lab: Lab) -> bool:
    """Whether a deployment of the lab may still own kernel objects."""
    return lab.deployments.exclude(status__in=FINISHED_STATES).exists()


def lab_export(*, lab: Lab, fmt: str) -> str:
    """The lab's normalised labfile as YAML or JSON text."""
    return labfile_module.dumps(spec.lab_to_labfile(lab), fmt=fmt)


def lab_plan(*, lab: Lab) -> PlanPreview:
    """What deploying the lab on the local host would do, as data and as shell commands."""
    plan = compiler.compile_plan(spec.lab_to_labfile(lab), deployment=PREVIEW_DEPLOYMENT)
    script = render.render_plan(plan)
    return {"plan": codec.plan_to_dict(plan), "commands": [ln for ln in script.splitlines() if ln]}
