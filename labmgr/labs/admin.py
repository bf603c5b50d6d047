"""Admin of labs. Networks, nodes, attachments and links are shown, never edited row by
row: a lab changes as a whole labfile (import, "Edit labfile"), so its rows always validate."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from labmgr.accounts.requests import acting_user
from labmgr.errors import ApplicationError
from labmgr.labs import selectors, services
from labmgr.labs.choices import LabfileFormat
from labmgr.labs.downloads import labfile_download
from labmgr.labs.forms import LabfileTextForm, LabImportForm
from labmgr.labs.models import Attachment, Lab, Link, Network, Node
from labplan.errors import LabfileError


class ViewOnlyMixin:
    """Rows written only by the lab services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NetworkInline(ViewOnlyMixin, admin.TabularInline[Network, Lab]):
    model = Network
    fields = readonly_fields = (
        "name",
        "driver",
        "subnet",
        "gateway",
        "internal",
        "mtu",
        "shaping",
        "parent",
        "mode",
        "vni",
    )
    show_change_link = True
    extra = 0


class NodeInline(ViewOnlyMixin, admin.TabularInline[Node, Lab]):
    model = Node
    fields = readonly_fields = (
        "name",
        "hostname",
        "host",
        "rootfs",
        "command",
        "privileged",
        "limits",
    )
    show_change_link = True
    extra = 0


class AttachmentInline(ViewOnlyMixin, admin.TabularInline[Attachment, Network]):
    model = Attachment
    fields = readonly_fields = (
        "position",
        "node",
        "network",
        "ipv4",
        "ifname",
        "mac",
        "impairments",
    )
    extra = 0


# Both ends of a link, as the labfile says them: node:ifname, addresses, impairments sent.
_LINK_FIELDS = (
    "position",
    "endpoint_a",
    "ipv4_a",
    "ipv6_a",
    "impairments_a",
    "endpoint_b",
    "ipv4_b",
    "ipv6_b",
    "impairments_b",
    "mtu",
)


class LinkInline(ViewOnlyMixin, admin.TabularInline[Link, Lab]):
    model = Link
    fields = readonly_fields = _LINK_FIELDS
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Link]:
        return super().get_queryset(request).select_related("node_a", "node_b")


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin[Lab]):
    list_display = ["name", "owner", "version", "network_count", "node_count", "updated"]
    list_filter = ["shared_with", "created", "updated"]
    search_fields = ["name", "description", "owner__username"]
    fields = ["name", "owner", "version", "description", "shared_with", "created", "updated"]
    readonly_fields = ["name", "owner", "version", "created", "updated"]
    filter_horizontal = ["shared_with"]
    inlines = [NetworkInline, NodeInline, LinkInline]
    # No bulk delete: deleting a lab is refused while it has a live deployment.
    actions = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lab]:
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(
                _networks=Count("networks", distinct=True), _nodes=Count("nodes", distinct=True)
            )
        )

    @admin.display(description="networks", ordering="_networks")
    def network_count(self, lab: Lab) -> int:
        return int(getattr(lab, "_networks", 0))

    @admin.display(description="nodes", ordering="_nodes")
    def node_count(self, lab: Lab) -> int:
        return int(getattr(lab, "_nodes", 0))

    def has_add_permission(self, request: HttpRequest) -> bool:
        # New labs come from a labfile: the changelist links to the import view instead.
        return False

    def save_model(self, request: HttpRequest, obj: Lab, form: Any, change: bool) -> None:
        services.lab_update(
            lab=obj,
            description=form.cleaned_data["description"],
            shared_with=[g.name for g in form.cleaned_data["shared_with"]],
            actor=acting_user(request),
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The groups were saved by the service in `save_model`; the inlines are view only,
        # so saving them writes nothing but gives the admin's change message its lists.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: Lab) -> None:
        services.lab_delete(lab=obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        lab = self.get_object(request, object_id)
        if lab is not None and selectors.lab_has_live_deployments(lab=lab):
            # Refuse before the confirmation page rather than fail after it.
            messages.error(request, f"Lab {lab.name!r} has a deployment that is not finished.")
            return HttpResponseRedirect(reverse("admin:labs_lab_change", args=[lab.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="labs_lab_import"),
            path("<int:pk>/labfile/", view(self.labfile_view), name="labs_lab_labfile"),
            path("<int:pk>/plan/", view(self.plan_view), name="labs_lab_plan"),
            path("<int:pk>/export/<str:fmt>/", view(self.export_view), name="labs_lab_export"),
            *super().get_urls(),
        ]

    def _lab(self, request: HttpRequest, pk: int, *, perm: str = "view") -> Lab:
        lab = get_object_or_404(self.get_queryset(request), pk=pk)
        if not request.user.has_perm(f"labs.{perm}_lab"):
            raise PermissionDenied
        return lab

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            **extra,
        }

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("labs.add_lab"):
            raise PermissionDenied
        form = LabImportForm(request.POST or None, request.FILES or None)
        form.fields["owner"].initial = request.user.pk
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                lab = services.lab_import(
                    owner=form.cleaned_data["owner"],
                    text=form.labfile_bytes(),
                    fmt=form.cleaned_data["fmt"] or None,
                    actor=acting_user(request),
                )
            except (LabfileError, ApplicationError) as exc:
                errors = _error_lines(exc)
            else:
                messages.success(request, f"Lab {lab.name!r} imported.")
                return HttpResponseRedirect(reverse("admin:labs_lab_change", args=[lab.pk]))
        context = self._context(request, "Import labfile", form=form, labfile_errors=errors)
        return TemplateResponse(request, "admin/labs/lab/labfile_form.html", context)

    def labfile_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        lab = self._lab(request, pk, perm="change")
        initial = {"text": selectors.lab_export(lab=lab, fmt=LabfileFormat.YAML)}
        form = LabfileTextForm(request.POST or None, request.FILES or None, initial=initial)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                services.lab_update_from_text(
                    lab=lab,
                    text=form.labfile_bytes(),
                    fmt=form.cleaned_data["fmt"] or None,
                    actor=acting_user(request),
                )
            except (LabfileError, ApplicationError) as exc:
                errors = _error_lines(exc)
            else:
                messages.success(request, f"Labfile of {lab.name!r} replaced.")
                return HttpResponseRedirect(reverse("admin:labs_lab_change", args=[lab.pk]))
        context = self._context(
            request, f"Edit labfile of {lab.name}", form=form, labfile_errors=errors, lab=lab
        )
        return TemplateResponse(request, "admin/labs/lab/labfile_form.html", context)

    def plan_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        lab = self._lab(request, pk)
        errors: list[str] = []
        commands: list[str] = []
        try:
            commands = selectors.lab_plan(lab=lab)["commands"]
        except (LabfileError, ApplicationError) as exc:
            errors = _error_lines(exc)
        context = self._context(
            request, f"Plan of {lab.name}", lab=lab, commands=commands, labfile_errors=errors
        )
        return TemplateResponse(request, "admin/labs/lab/plan.html", context)

    def export_view(self, request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
        lab = self._lab(request, pk)
        if fmt not in LabfileFormat.values:
            return HttpResponse("The format must be yaml or json.", status=400)
        return labfile_download(lab=lab, fmt=fmt)


def _error_lines(exc: LabfileError | ApplicationError) -> list[str]:
    if isinstance(exc, LabfileError):
        return [str(error) for error in exc.errors]
    return [f"{path}: {m}" for path, msgs in exc.errors.items() for m in msgs] or [exc.message]


@admin.register(Network)
class NetworkAdmin(ViewOnlyMixin, admin.ModelAdmin[Network]):
    list_display = ["name", "lab", "driver", "subnet", "gateway", "mtu", "vni"]
    list_filter = ["driver"]
    search_fields = ["name", "lab__name", "subnet"]
    list_select_related = ["lab"]
    inlines = [AttachmentInline]


@admin.register(Node)
class NodeAdmin(ViewOnlyMixin, admin.ModelAdmin[Node]):
    list_display = ["name", "lab", "hostname", "host", "rootfs", "privileged"]
    list_filter = ["privileged", "rootfs"]
    search_fields = ["name", "hostname", "lab__name"]
    list_select_related = ["lab"]
    inlines = [AttachmentInline]


@admin.register(Attachment)
class AttachmentAdmin(ViewOnlyMixin, admin.ModelAdmin[Attachment]):
    list_display = ["node", "network", "position", "ipv4", "ifname", "mac"]
    list_filter = ["network__driver"]
    search_fields = ["node__name", "network__name", "ipv4", "mac", "node__lab__name"]
    list_select_related = ["node__lab", "network__lab"]


@admin.register(Link)
class LinkAdmin(ViewOnlyMixin, admin.ModelAdmin[Link]):
    list_display = ["lab", "position", "endpoint_a", "endpoint_b", "mtu"]
    fields = readonly_fields = ("lab", *_LINK_FIELDS)
    search_fields = ["lab__name", "node_a__name", "node_b__name", "ifname_a", "ifname_b"]
    list_select_related = ["lab", "node_a", "node_b"]
