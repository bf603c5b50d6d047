"""A lab's labfile as a file download, the same from the API and the admin."""

from __future__ import annotations

from django.http import HttpResponse

from labmgr.labs import selectors
from labmgr.labs.choices import LabfileFormat
from labmgr.labs.models import Lab

CONTENT_TYPES: dict[str, str] = {
    LabfileFormat.YAML: "application/yaml; charset=utf-8",
    LabfileFormat.JSON: "application/json",
}


def labfile_download(*, lab: Lab, fmt: str) -> HttpResponse:
    """`fmt` is one of LabfileFormat's values (the caller says what else to answer)."""
    response = HttpResponse(selectors.lab_export(lab=lab, fmt=fmt), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{lab.name}.{fmt}"'
    return response
