"""A labfile being edited in the browser, kept even while it is invalid.

A lab's rows only ever hold a valid labfile; the editor's work in progress lives here
until it validates, so a student never loses what they typed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labmgr.labs.models import Lab


class LabDraft(models.Model):
    """The text of a labfile the owner saved while it was invalid: the next version of
    `lab`, or a lab not created yet when `lab` is NULL."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lab_drafts"
    )
    lab = models.ForeignKey(
        Lab, on_delete=models.CASCADE, null=True, blank=True, related_name="drafts"
    )
    # What the labfile names itself, as far as it could be read; for listings only.
    name = models.CharField(max_length=100, blank=True, default="")
    text = models.TextField()
    # The validation errors of `text` when it was saved: {field path: [messages]}.
    errors = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-id"]
        constraints = [
            # One draft per lab and owner: saving again replaces it.
            models.UniqueConstraint(
                fields=["owner", "lab"],
                condition=Q(lab__isnull=False),
                name="web_labdraft_one_per_lab",
            )
        ]

    def __str__(self) -> str:
        return f"draft {self.name or self.pk} ({self.owner})"
