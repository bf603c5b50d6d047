"""Admin of people: users with their role and quotas, groups with their class's teacher,
and the templates published to classes (with "copy for every member")."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest

from labmgr.accounts.models import Classroom, LabTemplate, Profile, TemplateCopy
from labmgr.accounts.requests import acting_user
from labmgr.accounts.services import template_copy_for_class


class ProfileInline(admin.StackedInline[Profile, User]):
    model = Profile
    can_delete = False
    verbose_name = verbose_name_plural = "role and quotas"
    fields = ["role", "max_deployments", "max_cpus", "max_memory", "max_pids"]


class ClassroomInline(admin.StackedInline[Classroom, Group]):
    model = Classroom
    can_delete = True
    verbose_name = "class"
    verbose_name_plural = "class (a group with a teacher)"
    fields = ["teacher"]
    autocomplete_fields = ["teacher"]


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class LabUserAdmin(UserAdmin[User]):
    inlines = [ProfileInline]
    # django-stubs types the admin options as instance attributes of a generic class; in
    # Django they are plain class attributes, so reading UserAdmin's is exact.
    list_display = (*UserAdmin.list_display, "role")  # type: ignore[misc]
    list_select_related = ["profile"]

    @admin.display(description="role")
    def role(self, user: User) -> str:
        if user.is_staff or user.is_superuser:
            return "admin"
        profile = getattr(user, "profile", None)
        return profile.role if profile else "user"


@admin.register(Group)
class ClassGroupAdmin(GroupAdmin):
    inlines = [ClassroomInline]
    list_display = ["name", "teacher"]

    @admin.display(description="teacher")
    def teacher(self, group: Group) -> str:
        classroom = getattr(group, "classroom", None)
        return str(classroom.teacher) if classroom else ""


class TemplateCopyInline(admin.TabularInline[TemplateCopy, LabTemplate]):
    model = TemplateCopy
    fields = readonly_fields = ("user", "lab", "created")
    can_delete = False
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(LabTemplate)
class LabTemplateAdmin(admin.ModelAdmin[LabTemplate]):
    list_display = ["lab", "classroom", "published_by", "created"]
    list_filter = ["classroom"]
    search_fields = ["lab__name", "classroom__group__name"]
    list_select_related = ["lab", "classroom__group", "published_by"]
    autocomplete_fields = ["published_by"]
    inlines = [TemplateCopyInline]
    actions = ["copy_for_class"]

    @admin.action(description="Copy for every member of the class who has no copy")
    def copy_for_class(self, request: HttpRequest, queryset: QuerySet[LabTemplate]) -> None:
        for template in queryset:
            copies = template_copy_for_class(template=template, actor=acting_user(request))
            self.message_user(
                request, f"{template}: {len(copies)} copy(ies) made.", messages.SUCCESS
            )
