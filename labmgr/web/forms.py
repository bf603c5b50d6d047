"""Forms of the browser's pages."""

from __future__ import annotations

from django import forms

from labmgr.labs.forms import LabfileTextForm
from labplan import interop


class ImportForm(LabfileTextForm):
    """A file to import: a labfile, a containerlab topology or a compose file, uploaded
    or pasted (the upload wins), its format told by content unless chosen."""

    # The editor's own textarea is "text" on the same page.
    prefix = "import"

    source = forms.ChoiceField(
        choices=[
            ("", "Tell by its content"),
            (interop.LABFILE, "labfile"),
            (interop.CONTAINERLAB, "containerlab topology (.clab.yml)"),
            (interop.COMPOSE, "compose file (compose.yaml)"),
        ],
        required=False,
        label="Format",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        del self.fields["fmt"]  # YAML or JSON is told by content
        self.fields["file"].label = "Upload a file"
        self.fields[
            "file"
        ].help_text = (
            "A labfile, containerlab topology or compose file (YAML or JSON), at most 1 MiB."
        )
        self.fields["text"].label = "or paste it"
        self.fields["text"].widget = forms.Textarea(
            attrs={"rows": 10, "spellcheck": "false", "class": "code"}
        )

    def labfile_text(self) -> str:
        return self.labfile_bytes().decode("utf-8", errors="replace")

    def source_format(self) -> str | None:
        return str(self.cleaned_data.get("source") or "") or None


class EditorForm(forms.Form):
    """What the editor posts: the labfile's YAML text (the form fields only edit it)."""

    text = forms.CharField(strip=False, widget=forms.Textarea)
