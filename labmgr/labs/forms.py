"""Forms of the admin's labfile views (import a new lab, replace a lab's labfile)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

FORMAT_CHOICES = [("", "detect"), ("yaml", "YAML"), ("json", "JSON")]


class LabfileTextForm(forms.Form):
    """A labfile as an uploaded file or pasted text (the file wins when both are given)."""

    file = forms.FileField(required=False, help_text="A .yaml or .json labfile, at most 1 MiB.")
    text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"}),
    )
    fmt = forms.ChoiceField(choices=FORMAT_CHOICES, required=False, label="Format")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("file") and not data.get("text", "").strip():
            raise forms.ValidationError("Upload a labfile or paste its text.")
        return data

    def labfile_bytes(self) -> bytes:
        upload = self.cleaned_data.get("file")
        if upload:
            return bytes(upload.read())
        return str(self.cleaned_data["text"]).encode("utf-8")


class LabImportForm(LabfileTextForm):
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))

    field_order = ["owner", "file", "text", "fmt"]
