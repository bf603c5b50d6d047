"""Reads about users: the role a user holds, the classes they teach or belong to, quotas."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from labmgr.accounts.choices import Role
from labmgr.accounts.models import Classroom, LabTemplate, Profile


def user_is_admin(*, user: User | AnonymousUser) -> bool:
    """Admins (staff or superusers) see every lab and may use admin-only labfile fields."""
    return bool(user.is_active and (user.is_staff or user.is_superuser))


def user_role(*, user: User | AnonymousUser) -> Role:
    """Admin for staff, else the profile's role (user without a profile)."""
    if not user.is_authenticated:
        return Role.USER
    if user_is_admin(user=user):
        return Role.ADMIN
    profile = Profile.objects.filter(user_id=user.pk).only("role").first()
    return Role(profile.role) if profile else Role.USER


def user_is_teacher(*, user: User | AnonymousUser) -> bool:
    return user_role(user=user) in (Role.TEACHER, Role.ADMIN)


def user_profile(*, user: User) -> Profile | None:
    return Profile.objects.filter(user_id=user.pk).first()


def classroom_list_taught(*, teacher: User) -> QuerySet[Classroom]:
    return Classroom.objects.filter(teacher=teacher).select_related("group")


def students_of(*, teacher: User) -> QuerySet[Any]:
    """Users in a class the teacher teaches (the teacher excluded)."""
    users = get_user_model().objects.filter(groups__classroom__teacher=teacher)
    return users.exclude(pk=teacher.pk).distinct()


def user_teaches(*, teacher: User | AnonymousUser, student_id: int) -> bool:
    """Whether `student_id` is in a class `teacher` teaches."""
    if not teacher.is_authenticated:
        return False
    return students_of(teacher=teacher).filter(pk=student_id).exists()


def template_list_for(*, user: User) -> QuerySet[LabTemplate]:
    """Templates published to the classes the user is in or teaches."""
    taught = LabTemplate.objects.filter(classroom__teacher=user)
    attended = LabTemplate.objects.filter(classroom__group__user=user)
    return (taught | attended).distinct().select_related("lab", "classroom__group")
