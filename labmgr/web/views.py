"""The browser's pages, thin over the web selectors and services.

A page never shows a traceback: a user's mistake becomes a message on the page, a lab
the user may not see is a plain 404, and a lab they may only read says so.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labmgr import jsondepth
from labmgr.accounts.requests import AuthenticatedHttpRequest
from labmgr.accounts.selectors import user_is_admin
from labmgr.errors import ApplicationError
from labmgr.hosts.selectors import host_list
from labmgr.images import selectors as image_selectors
from labmgr.labs import selectors as lab_selectors
from labmgr.labs import services as lab_services
from labmgr.labs.models import Lab
from labmgr.reservations import clock
from labmgr.web import examples as example_store
from labmgr.web import selectors, services
from labmgr.web.calendar.selectors import my_reservations
from labmgr.web.forms import EditorForm, ImportForm
from labmgr.web.models import LabDraft
from labmgr.web.timezones import zone_name
from labplan.errors import LabfileError

# The labfile a new lab starts from in the editor.
STARTER = """labfile: 1
name: my-lab
description: Two nodes on one bridge

networks:
  lan:
    driver: bridge
    subnet: 10.10.0.0/24

nodes:
  alice:
    networks:
      lan: {}
  bob:
    networks:
      lan: {}
"""
CHECK_MAX_BYTES = 1024 * 1024
# What an import changed or dropped is told one message each, up to this many.
MAX_NOTES_SHOWN = 20
READ_ONLY = "This lab is shared with you to read; only its owner may"


def _visible_lab(request: AuthenticatedHttpRequest, pk: int) -> Lab:
    try:
        return lab_selectors.lab_get_visible(user=request.user, pk=pk)
    except Lab.DoesNotExist:
        raise Http404("no such lab") from None


def _refused(request: HttpRequest, sentence: str) -> HttpResponse:
    return render(request, "web/refused.html", {"sentence": sentence}, status=403)


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(
        request,
        "web/dashboard.html",
        {
            "labs": selectors.dashboard_labs(user=request.user),
            "new_drafts": selectors.dashboard_new_drafts(user=request.user),
            "hosts": selectors.dashboard_hosts(),
            "deployments": selectors.recent_deployments(user=request.user),
            "reservations": my_reservations(user=request.user),
            "now": clock.now(),
            "nav": "dashboard",
            # The zone its times are drawn in (UTC until the browser's script has told it).
            "zone": zone_name(),
        },
    )


def dashboard_status(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "Log in first."}, status=401)
    return JsonResponse(selectors.dashboard_status(user=request.user))


@login_required
def examples(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(
        request, "web/examples.html", {"examples": example_store.example_list(), "nav": "examples"}
    )


@login_required
@require_POST
def example_copy(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    example = example_store.example_get(name)
    if example is None:
        raise Http404("no such example")
    try:
        lab = services.example_copy(user=request.user, example=example)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web-examples")
    except LabfileError as exc:
        problems = "; ".join(str(error) for error in exc.errors)
        messages.error(
            request, f"The example {name!r} cannot be copied into your labs: {problems}."
        )
        return redirect("web-examples")
    messages.success(request, f"The example is now your lab {lab.name!r}.")
    return redirect("web-lab", pk=lab.pk)


@login_required
def images(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Each host's image store as its agent last listed it; admins act on it from here
    (through the API), and the page follows the hosts' reports as they come."""
    return render(
        request,
        "web/images.html",
        {
            "hosts": [
                image_selectors.host_images(host=host, user=request.user) for host in host_list()
            ],
            "is_admin": user_is_admin(user=request.user),
            "nav": "images",
        },
    )


@login_required
def lab_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The editor on a new lab, with a form to import a labfile instead."""
    if request.method == "POST" and "import" in request.POST:
        return _import(request)
    return _editor(request, lab=None, draft=None, initial=STARTER)


def _import(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        for error in form.non_field_errors():  # each a message (django-stubs: or an error)
            messages.error(request, str(error))
        return _editor(request, lab=None, draft=None, initial=STARTER, import_form=form)
    saved = services.lab_import_or_draft(
        user=request.user, text=form.labfile_text(), source=form.source_format()
    )
    if saved.refused:
        messages.error(request, "The file cannot be imported: nothing was made.")
        return _editor(
            request,
            lab=None,
            draft=None,
            initial=STARTER,
            import_form=form,
            import_errors=saved.refused,
        )
    shown = saved.notes[:MAX_NOTES_SHOWN]
    for note in shown:
        messages.info(request, f"Import: {note}")
    if len(saved.notes) > len(shown):
        more = len(saved.notes) - len(shown)
        messages.info(request, f"Import: and {more} more change{'s' if more > 1 else ''}.")
    if saved.ok and saved.lab is not None:
        messages.success(request, f"Imported the lab {saved.lab.name!r}.")
        return redirect("web-lab", pk=saved.lab.pk)
    messages.warning(
        request, "The labfile has problems; it is kept as a draft so you can fix them here."
    )
    assert saved.draft is not None
    return redirect("web-draft", pk=saved.draft.pk)


@login_required
def lab_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lab = _visible_lab(request, pk)
    if not lab_selectors.lab_can_change(user=request.user, lab=lab):
        return _refused(request, READ_ONLY + " edit it.")
    draft = LabDraft.objects.filter(owner=request.user, lab=lab).first()
    initial = draft.text if draft else lab_selectors.lab_export(lab=lab, fmt="yaml")
    return _editor(request, lab=lab, draft=draft, initial=initial)


@login_required
def draft_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    draft = get_object_or_404(LabDraft, pk=pk, owner=request.user)
    if draft.lab_id is not None:
        return redirect("web-lab-edit", pk=draft.lab_id)
    return _editor(request, lab=None, draft=draft, initial=draft.text)


@login_required
@require_POST
def draft_discard(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    draft = get_object_or_404(LabDraft, pk=pk, owner=request.user)
    lab_id = draft.lab_id
    services.draft_discard(draft=draft)
    messages.info(request, "The draft is discarded.")
    return redirect("web-lab", pk=lab_id) if lab_id else redirect("home")


def _editor(
    request: AuthenticatedHttpRequest,
    *,
    lab: Lab | None,
    draft: LabDraft | None,
    initial: str,
    import_form: ImportForm | None = None,
    import_errors: dict[str, list[str]] | None = None,
) -> HttpResponse:
    errors: dict[str, list[str]] = dict(draft.errors) if draft else {}
    text = initial
    if request.method == "POST" and "import" not in request.POST:
        form = EditorForm(request.POST)
        if form.is_valid():
            text = form.cleaned_data["text"]
            saved = services.editor_save(user=request.user, text=text, lab=lab, draft=draft)
            if saved.ok and saved.lab is not None:
                messages.success(request, f"Saved the lab {saved.lab.name!r}.")
                return redirect("web-lab", pk=saved.lab.pk)
            messages.warning(
                request,
                "Saved as a draft: the lab keeps its last valid version until the problems "
                "below are fixed.",
            )
            if lab is None and saved.draft is not None and draft is None:
                return redirect("web-draft", pk=saved.draft.pk)
            draft, errors = saved.draft, saved.errors
    return render(
        request,
        "web/editor.html",
        {
            "lab": lab,
            "draft": draft,
            "text": text,
            "errors": errors,
            "errors_json": errors,
            "attachment_options": selectors.attachment_options(),
            "import_form": import_form or (ImportForm() if lab is None else None),
            "import_errors": import_errors or {},
            "nav": "new" if lab is None else "",
        },
    )


@login_required
@require_POST
def labfile_check(request: AuthenticatedHttpRequest) -> JsonResponse:
    """Live validation for the editor: `{"text": "..."}` -> `{"valid", "errors"}`."""
    if len(request.body) > CHECK_MAX_BYTES:
        return JsonResponse({"detail": "The labfile is larger than 1 MiB."}, status=413)
    try:
        body = jsondepth.loads(request.body or b"{}")
    except jsondepth.TooDeep as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return JsonResponse({"detail": 'Send {"text": "<labfile>"} as JSON.'}, status=400)
    errors = services.labfile_check(text=body["text"], user=request.user)
    return JsonResponse({"valid": not errors, "errors": errors})


@login_required
def lab_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lab = _visible_lab(request, pk)
    deployment = selectors.latest_deployment(lab)
    commands, plan_problem = selectors.lab_plan_preview(lab=lab)
    document = selectors.lab_document(lab)
    return render(
        request,
        "web/lab_detail.html",
        {
            "lab": lab,
            "document": document,
            "deployment": deployment,
            "steps": list(deployment.steps.all()) if deployment else [],
            "status": deployment.status if deployment else "",
            "status_label": selectors.status_label(deployment.status if deployment else ""),
            "can_change": lab_selectors.lab_can_change(user=request.user, lab=lab),
            "has_draft": LabDraft.objects.filter(owner=request.user, lab=lab).exists(),
            "commands": commands,
            "plan_problem": plan_problem,
            "node_names": list((document.get("nodes") or {}).keys()),
            "node_rows": selectors.node_rows(lab=lab, deployment=deployment),
            "page_data": _lab_page_data(request, lab, deployment),
        },
    )


def _lab_page_data(request: HttpRequest, lab: Lab, deployment: Any) -> dict[str, Any]:
    """What the lab's ES modules need: URLs and the current deployment."""
    return {
        "lab": lab.pk,
        "name": lab.name,
        "deployment": deployment.pk if deployment else None,
        "status": deployment.status if deployment else "",
        "urls": {
            "deploy": f"/api/labs/{lab.pk}/deploy/",
            "destroy": f"/api/labs/{lab.pk}/destroy/",
            "redeploy": f"/api/deployments/{deployment.pk}/redeploy/" if deployment else "",
            "cancel": f"/api/deployments/{deployment.pk}/cancel/" if deployment else "",
            "check": f"/api/deployments/{deployment.pk}/check/" if deployment else "",
            "metrics": f"/api/labs/{lab.pk}/metrics/",
            "stream": f"/ws/labs/{lab.pk}/",
            "terminals": reverse("web-lab-terminals", args=[lab.pk]),
        },
    }


@login_required
def lab_topology(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lab = _visible_lab(request, pk)
    deployment = selectors.latest_deployment(lab)
    return render(
        request,
        "web/topology.html",
        {
            "lab": lab,
            "deployment": deployment,
            "status_label": selectors.status_label(deployment.status if deployment else ""),
            "can_change": lab_selectors.lab_can_change(user=request.user, lab=lab),
            "graph": selectors.topology(lab=lab, deployment=deployment),
            "page_data": _lab_page_data(request, lab, deployment),
        },
    )


@login_required
def lab_terminals(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lab = _visible_lab(request, pk)
    if not lab_selectors.lab_can_change(user=request.user, lab=lab):
        return _refused(request, "Only the lab's owner may open terminals in its nodes.")
    deployment = selectors.latest_deployment(lab)
    document = selectors.lab_document(lab)
    return render(
        request,
        "web/terminals.html",
        {
            "lab": lab,
            "deployment": deployment,
            "running": bool(deployment and deployment.status == "running"),
            "node_names": list((document.get("nodes") or {}).keys()),
            "open": [n for n in request.GET.getlist("node") if n in (document.get("nodes") or {})],
            "page_data": _lab_page_data(request, lab, deployment),
        },
    )


@login_required
@require_POST
def lab_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lab = _visible_lab(request, pk)
    if not lab_selectors.lab_can_change(user=request.user, lab=lab):
        return _refused(request, READ_ONLY + " delete it.")
    try:
        lab_services.lab_delete(lab=lab)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web-lab", pk=lab.pk)
    messages.success(request, f"Deleted the lab {lab.name!r}.")
    return redirect("home")
