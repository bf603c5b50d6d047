"""Accounts: a user's role and quotas, classes (a group with a teacher) and the lab
templates a teacher publishes to a class, with the copies members got."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from labmgr.accounts.choices import PROFILE_ROLES, Role
from labmgr.labs.models import Lab


class Profile(models.Model):
    """A user's role and quotas. Absent: a plain user without quotas. A quota left empty
    is unlimited; admins are never held to quotas."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=16, choices=PROFILE_ROLES, default=Role.USER)
    max_deployments = models.PositiveIntegerField(
        null=True, blank=True, help_text="deployments running at once; empty: no limit"
    )
    max_cpus = models.DecimalField(
        max_digits=8,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="CPUs of all running deployments together; empty: no limit",
    )
    max_memory = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="bytes of all running deployments together"
    )
    max_pids = models.PositiveIntegerField(
        null=True, blank=True, help_text="processes of all running deployments together"
    )

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class Classroom(models.Model):
    """A class: a group of students with its teacher. Members are the group's users."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="classroom")
    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="classes_taught"
    )

    class Meta:
        ordering = ["group__name"]

    def __str__(self) -> str:
        return self.group.name


class LabTemplate(models.Model):
    """A lab a teacher published to a class; members copy it into labs of their own."""

    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="templates")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="templates")
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="published_templates"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["classroom_id", "lab__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["classroom", "lab"], name="accounts_template_unique_classroom_lab"
            )
        ]

    def __str__(self) -> str:
        return f"{self.lab.name} for {self.classroom}"


class TemplateCopy(models.Model):
    """The lab a member got from a template: one copy per member and template."""

    template = models.ForeignKey(LabTemplate, on_delete=models.CASCADE, related_name="copies")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="template_copies"
    )
    lab = models.OneToOneField(Lab, on_delete=models.CASCADE, related_name="template_copy")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template_id", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "user"], name="accounts_templatecopy_unique_template_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.lab} from {self.template}"
