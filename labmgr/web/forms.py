"""Forms of the browser's pages."""

from __future__ import annotations

from django import forms

from labmgr.labs.forms import LabfileTextForm


class ImportForm(LabfileTextForm):
    """A labfile to import: an uploaded file or pasted text (the file wins)."""

    # The editor's own textarea is "text" on the same page.
    prefix = "import"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        del self.fields["fmt"]  # the format is detected
        self.fields["file"].label = "Upload a labfile"
        self.fields["text"].label = "or paste it"
        self.fields["text"].widget = forms.Textarea(
            attrs={"rows": 10, "spellcheck": "false", "class": "code"}
        )

    def labfile_text(self) -> str:
        return self.labfile_bytes().decode("utf-8", errors="replace")


class EditorForm(forms.Form):
    """What the editor posts: the labfile's YAML text (the form fields only edit it)."""

    text = forms.CharField(strip=False, widget=forms.Textarea)
