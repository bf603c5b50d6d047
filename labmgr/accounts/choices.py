"""Closed sets of values for accounts: the roles a user holds."""

from django.db import models


class Role(models.TextChoices):
    """Admin comes from Django's staff flag; a profile stores only teacher or user."""

    ADMIN = "admin", "Admin"
    TEACHER = "teacher", "Teacher"
    USER = "user", "User"


# What a profile may store: being an admin is `is_staff`, so the admin site stays the
# one place that grants it.
PROFILE_ROLES = [(Role.TEACHER.value, Role.TEACHER.label), (Role.USER.value, Role.USER.label)]
