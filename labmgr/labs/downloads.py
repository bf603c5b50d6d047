"""A lab's labfile as a file download, the same from the API and the admin."""

from __future__ import annotations

from django.http import HttpResponse

from labmgr.labs import selectors, spec
from labmgr.labs.choices import LabfileFormat
from labmgr.labs.models import Lab
from labplan import interop

CONTENT_TYPES: dict[str, str] = {
    LabfileFormat.YAML: "application/yaml; charset=utf-8",
    LabfileFormat.JSON: "application/json",
}


def labfile_download(*, lab: Lab, fmt: str) -> HttpResponse:
    """`fmt` is one of LabfileFormat's values (the caller says what else to answer)."""
    response = HttpResponse(selectors.lab_export(lab=lab, fmt=fmt), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{lab.name}.{fmt}"'
    return response


FILE_NAMES = {"containerlab": "{name}.clab.yml", "compose": "{name}.compose.yaml"}


def other_tool_download(*, lab: Lab, fmt: str) -> HttpResponse:
    """The lab as a containerlab topology or a compose file (`fmt`), what that tool's file
    cannot hold listed as comments at its top, so the file stays valid YAML."""
    exported = interop.from_labfile(spec.lab_to_labfile(lab), fmt)
    header = "".join(f"# labmgr: {note}\n" for note in exported.notes)
    response = HttpResponse(header + exported.text, content_type=CONTENT_TYPES["yaml"])
    filename = FILE_NAMES[fmt].format(name=lab.name)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
