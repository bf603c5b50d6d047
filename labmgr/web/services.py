"""Writes the browser makes on labs: save from the editor (or keep a draft), import,
copy an example, and the live validation the editor asks for while the user types.

Every write goes through `labmgr.labs.services`, so the browser, the API and the admin
accept and refuse exactly the same labfiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.contrib.auth.models import User
from django.db import transaction

from labmgr.accounts.selectors import user_is_admin
from labmgr.errors import ApplicationError
from labmgr.labs import services as lab_services
from labmgr.labs.models import Lab
from labmgr.labs.subnets import lab_subnet_errors
from labmgr.web.examples import Example
from labmgr.web.models import LabDraft
from labplan import interop
from labplan import labfile as labfile_module
from labplan.errors import FieldError, LabfileError

# How many "-2", "-3", ... suffixes to try when a copied example's name is taken.
MAX_COPIES = 50
NAME_LINE = re.compile(r"^name:[ \t]*([^#\n]+?)[ \t]*(?:#.*)?$", re.MULTILINE)


@dataclass
class Saved:
    """What a save did: the lab it wrote, or the draft it kept and why; for an import of
    another tool's file, what the conversion changed or dropped (`notes`), or why the
    file has no labfile form (`refused`: then neither a lab nor a draft is made)."""

    lab: Lab | None = None
    draft: LabDraft | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    refused: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def labfile_check(*, text: str, user: User) -> dict[str, list[str]]:
    """The problems of labfile text, by field path ("labfile" for the whole document);
    empty when it is valid and the user may deploy what it asks for."""
    try:
        lab = _load(text)
        problems = [] if user_is_admin(user=user) else labfile_module.admin_requirements(lab)
        problems += lab_subnet_errors(lab)
        if problems:
            raise LabfileError(problems)
    except LabfileError as exc:
        return exc.as_dict()
    return {}


def editor_save(*, user: User, text: str, lab: Lab | None, draft: LabDraft | None) -> Saved:
    """Save the editor's text as the lab (a new lab when `lab` is None); when it is not
    valid, keep it as a draft instead and say why."""
    try:
        with transaction.atomic():
            if lab is None:
                lab = lab_services.lab_import(owner=user, text=text)
            else:
                lab_services.lab_update_from_text(lab=lab, text=text, actor=user)
            LabDraft.objects.filter(owner=user, lab=lab).delete()
            if draft is not None and draft.pk:
                draft.delete()
    except (LabfileError, ApplicationError) as exc:
        errors = _errors_of(exc)
        return Saved(
            lab=lab,
            draft=draft_keep(user=user, text=text, lab=lab, draft=draft, errors=errors),
            errors=errors,
        )
    return Saved(lab=lab)


def draft_keep(
    *,
    user: User,
    text: str,
    lab: Lab | None,
    draft: LabDraft | None,
    errors: dict[str, list[str]],
) -> LabDraft:
    """Store the text as the user's draft of `lab` (or of a new lab), replacing the last."""
    name = _name_of(text)
    if draft is None and lab is not None:
        draft = LabDraft.objects.filter(owner=user, lab=lab).first()
    if draft is None:
        return LabDraft.objects.create(owner=user, lab=lab, name=name, text=text, errors=errors)
    draft.name, draft.text, draft.errors = name, text, errors
    draft.save(update_fields=["name", "text", "errors", "updated"])
    return draft


def draft_discard(*, draft: LabDraft) -> None:
    draft.delete()


def lab_import_or_draft(*, user: User, text: str, source: str | None = None) -> Saved:
    """Import a labfile, a containerlab topology or a compose file (`source`, told by
    content when None) as a new lab. Another tool's file is converted to a labfile first;
    an invalid labfile (the converted one too) is kept as a draft to fix, and a file
    with no labfile form is refused naming its own fields."""
    if (source or interop.detect_text(text)) == interop.LABFILE:
        return editor_save(user=user, text=text, lab=None, draft=None)
    try:
        converted = lab_services.file_convert(text=text, source=source)
    except LabfileError as exc:
        return Saved(refused=exc.as_dict())
    labfile_text = yaml.safe_dump(converted.tree, sort_keys=False, allow_unicode=True)
    saved = editor_save(user=user, text=labfile_text, lab=None, draft=None)
    saved.notes = tuple(str(note) for note in converted.notes)
    return saved


def example_copy(*, user: User, example: Example) -> Lab:
    """A new lab of the user from an example, renamed `<name>-2`, ... when the name is
    already one of the user's labs."""
    tree = labfile_module.dump(labfile_module.load(example.text))
    taken = set(Lab.objects.filter(owner=user).values_list("name", flat=True))
    tree["name"] = _free_name(str(tree["name"]), taken)
    return lab_services.lab_create(owner=user, labfile_tree=tree)


def _free_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    for n in range(2, MAX_COPIES + 2):
        candidate = f"{name[: 40 - len(str(n)) - 1]}-{n}"
        if candidate not in taken:
            return candidate
    raise ApplicationError.for_field(
        "name", f"You already have {MAX_COPIES} copies of {name!r}; rename or delete one first."
    )


def _load(text: str) -> Any:
    try:
        return labfile_module.load(text)
    except yaml.YAMLError as exc:  # the same net as the lab services keep
        problem = str(exc).splitlines()[0] if str(exc) else "unreadable YAML"
        raise LabfileError([FieldError("", f"YAML error: {problem}")]) from exc


def _errors_of(exc: Exception) -> dict[str, list[str]]:
    if isinstance(exc, LabfileError):
        return exc.as_dict()
    assert isinstance(exc, ApplicationError)
    return exc.errors or {"labfile": [exc.message]}


def _name_of(text: str) -> str:
    """The name the text gives itself, for the draft's title. A line match, not a parse:
    the text may be invalid, and parsing YAML the validator refused may be costly."""
    match = NAME_LINE.search(text)
    return match.group(1).strip("\"'")[:100] if match else ""
