"""Writes on labs: create, update, import and delete, each in one transaction.

A lab's networks and nodes are always replaced as a whole from a validated labfile, so
the rows never hold a lab labplan would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import yaml
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from labmgr.accounts.selectors import user_is_admin
from labmgr.errors import ApplicationError, Conflict
from labmgr.labs import selectors, spec
from labmgr.labs.models import Lab
from labmgr.labs.subnets import lab_subnet_errors
from labplan import interop
from labplan import labfile as labfile_module
from labplan.errors import FieldError, LabfileError
from labplan.interop.common import Imported, Note
from labplan.model import Labfile


def lab_create(
    *,
    owner: User,
    labfile_tree: object,
    shared_with: Iterable[str] = (),
    actor: User | None = None,
) -> Lab:
    """A new lab owned by `owner` from a labfile tree; `actor` (default: the owner) is who
    asks, and decides whether admin-only fields are allowed."""
    labfile = _validated(labfile_tree, actor=actor or owner)
    return _create(owner=owner, labfile=labfile, shared_with=shared_with)


def lab_import(
    *,
    owner: User,
    text: str | bytes,
    fmt: str | None = None,
    shared_with: Iterable[str] = (),
    actor: User | None = None,
) -> Lab:
    """A new lab from labfile text (YAML or JSON; detected when `fmt` is None)."""
    labfile = _load(text, fmt=fmt)
    _check_admin_fields(labfile, actor=actor or owner)
    _check_subnets(labfile)
    return _create(owner=owner, labfile=labfile, shared_with=shared_with)


def lab_import_file(
    *,
    owner: User,
    text: str | bytes,
    fmt: str | None = None,
    source: str | None = None,
    actor: User | None = None,
) -> tuple[Lab, tuple[Note, ...]]:
    """A new lab from a labfile, a containerlab topology or a compose file (`source`, one
    of labplan.interop.FORMATS; told by content when None), with the notes of what the
    import changed or dropped. A refusal names the file's own fields."""
    if source == interop.LABFILE:
        return lab_import(owner=owner, text=text, fmt=fmt, actor=actor), ()
    converted = file_convert(text=text, source=source)
    try:
        labfile = _validated(converted.tree, actor=actor or owner)
    except LabfileError as exc:
        raise LabfileError(converted.in_file_terms(exc.errors)) from exc
    return _create(owner=owner, labfile=labfile, shared_with=()), converted.notes


def file_convert(*, text: str | bytes, source: str | None = None) -> Imported:
    """The labfile tree of a labfile, containerlab topology or compose file (`source`,
    told by content when None), not yet validated, with its notes; LabfileError naming
    the file's own fields when it has no labfile form."""
    with _yaml_problems_refused():
        return interop.to_labfile(text, source)


def lab_update(
    *,
    lab: Lab,
    labfile_tree: object = None,
    description: str | None = None,
    shared_with: Iterable[str] | None = None,
    actor: User | None = None,
) -> Lab:
    """Change what is given: the whole labfile (networks and nodes replaced atomically),
    the description, the groups the lab is shared with."""
    labfile = None if labfile_tree is None else _validated(labfile_tree, actor=actor or lab.owner)
    groups = None if shared_with is None else _groups(shared_with)
    with transaction.atomic():
        if labfile is not None:
            _check_name_free(owner=lab.owner, name=labfile.name, exclude=lab.pk)
            lab.name = labfile.name
            lab.description = labfile.description
            lab.networks.all().delete()
            lab.nodes.all().delete()
            spec.labfile_to_rows(lab=lab, labfile=labfile)
        if description is not None:
            lab.description = description
        lab.save(update_fields=["name", "description", "updated"])
        if groups is not None:
            lab.shared_with.set(groups)
        spec.lab_refresh_document(lab)
    return lab


def lab_update_from_text(
    *, lab: Lab, text: str | bytes, fmt: str | None = None, actor: User | None = None
) -> Lab:
    """Replace the lab's labfile with labfile text (the admin's "edit labfile" form)."""
    labfile = _load(text, fmt=fmt)
    return lab_update(lab=lab, labfile_tree=labfile_module.dump(labfile), actor=actor)


def lab_delete(*, lab: Lab) -> None:
    """Delete the lab; refused while one of its deployments may still own kernel objects."""
    if selectors.lab_has_live_deployments(lab=lab):
        raise Conflict(f"Lab {lab.name!r} has a deployment that is not finished; destroy it first.")
    lab.delete()


def _load(text: str | bytes, *, fmt: str | None) -> Labfile:
    with _yaml_problems_refused():
        return labfile_module.load(text, fmt=fmt)


@contextmanager
def _yaml_problems_refused() -> Iterator[None]:
    # labplan reports YAML problems as LabfileError; this net only catches one that slips
    # through (e.g. a control character PyYAML refuses before parsing), so a bad upload is
    # a 400, never a 500.
    try:
        yield
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else "unreadable YAML"
        raise LabfileError([FieldError("", f"YAML error: {problem}")]) from exc


def _validated(labfile_tree: object, *, actor: User) -> Labfile:
    labfile = labfile_module.validate(labfile_tree)
    _check_admin_fields(labfile, actor=actor)
    _check_subnets(labfile)
    return labfile


def _check_admin_fields(labfile: Labfile, *, actor: User) -> None:
    if user_is_admin(user=actor):
        return
    if errors := labfile_module.admin_requirements(labfile):
        raise LabfileError(errors)


def _check_subnets(labfile: Labfile) -> None:
    if errors := lab_subnet_errors(labfile):
        raise LabfileError(errors)


def _create(*, owner: User, labfile: Labfile, shared_with: Iterable[str]) -> Lab:
    groups = _groups(shared_with)
    try:
        with transaction.atomic():
            _check_name_free(owner=owner, name=labfile.name, exclude=None)
            lab = Lab.objects.create(
                owner=owner, name=labfile.name, description=labfile.description
            )
            spec.labfile_to_rows(lab=lab, labfile=labfile)
            spec.lab_refresh_document(lab)
            lab.shared_with.set(groups)
    except IntegrityError as exc:
        # Two requests created the same name at once; the loser hears what the check says.
        if Lab.objects.filter(owner=owner, name=labfile.name).exists():
            raise _name_taken(labfile.name) from exc
        raise
    return lab


def _check_name_free(*, owner: User, name: str, exclude: int | None) -> None:
    taken = Lab.objects.filter(owner=owner, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise _name_taken(name)


def _name_taken(name: str) -> ApplicationError:
    return ApplicationError.for_field("name", f"You already have a lab named {name!r}.")


def _groups(names: Iterable[str]) -> list[Group]:
    wanted = list(dict.fromkeys(names))
    groups = list(Group.objects.filter(name__in=wanted))
    if missing := sorted(set(wanted) - {g.name for g in groups}):
        message = "No such group: " + ", ".join(repr(n) for n in missing) + "."
        raise ApplicationError.for_field("shared_with", message)
    return groups
