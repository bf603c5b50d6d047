"""Thin REST views over the lab services and selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from labmgr.accounts.requests import acting_user
from labmgr.api.parsers import LabfileText, LabfileTextParser
from labmgr.api.renderers import JSONRenderer, YAMLRenderer
from labmgr.deployments import lifecycle
from labmgr.deployments.api.serializers import DeploymentSerializer
from labmgr.errors import ApplicationError, NotAllowed
from labmgr.labs import selectors, services
from labmgr.labs.api.serializers import (
    LabPatchSerializer,
    LabSerializer,
    LabWriteSerializer,
    PlanSerializer,
)
from labmgr.labs.choices import LabfileFormat
from labmgr.labs.downloads import labfile_download, other_tool_download
from labmgr.labs.models import Lab
from labmgr.monitoring import selectors as metrics_selectors
from labmgr.monitoring.api.params import MetricsQuery
from labplan import interop

ERROR = OpenApiResponse(description='`{"detail": "...", "errors": {"field.path": ["..."]}}`')


class LabViewSet(viewsets.GenericViewSet[Lab]):
    """Labs. Owners and staff may change a lab; members of a group it is shared with may
    read and export it but not change or delete it (403); anyone else gets 404."""

    serializer_class = LabSerializer
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[Lab]:
        return selectors.lab_list_visible(user=acting_user(self.request))

    def _changeable(self) -> Lab:
        lab = self.get_object()
        if not selectors.lab_can_change(user=acting_user(self.request), lab=lab):
            raise NotAllowed("This lab is shared with you to read; only its owner may change it.")
        return lab

    def _represent(self, lab: Lab, code: int = status.HTTP_200_OK) -> Response:
        # Re-read with the prefetches the representation needs.
        fresh = self.get_queryset().get(pk=lab.pk)
        return Response(self.get_serializer(fresh).data, status=code)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(selectors.lab_page_visible(user=acting_user(request)))
        assert page is not None  # the API always paginates (settings.REST_FRAMEWORK)
        selectors.lab_attach_group_names(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=LabWriteSerializer, responses={201: LabSerializer, 400: ERROR})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = _validated(LabWriteSerializer, request.data)
        lab = services.lab_create(
            owner=acting_user(request),
            labfile_tree=body["labfile"],
            shared_with=body.get("shared_with", ()),
        )
        return self._represent(lab, status.HTTP_201_CREATED)

    @extend_schema(request=LabWriteSerializer, responses={200: LabSerializer, 400: ERROR})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        lab = self._changeable()
        body = _validated(LabWriteSerializer, request.data)
        services.lab_update(
            lab=lab,
            labfile_tree=body["labfile"],
            shared_with=body.get("shared_with"),
            actor=acting_user(request),
        )
        return self._represent(lab)

    @extend_schema(request=LabPatchSerializer, responses={200: LabSerializer, 400: ERROR})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        lab = self._changeable()
        body = _validated(LabPatchSerializer, request.data)
        services.lab_update(
            lab=lab,
            labfile_tree=body.get("labfile"),
            description=body.get("description"),
            shared_with=body.get("shared_with"),
            actor=acting_user(request),
        )
        return self._represent(lab)

    @extend_schema(responses={204: None, 403: ERROR, 409: ERROR})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.lab_delete(lab=self._changeable())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="labs_import",
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=sorted(interop.ALIASES),
                description="what the file is; told by its content when absent",
            )
        ],
        request={
            "application/yaml": OpenApiTypes.STR,
            "text/plain": OpenApiTypes.STR,
            "application/json": OpenApiTypes.OBJECT,
        },
        responses={201: LabSerializer, 400: ERROR, 413: ERROR},
        description="Create a lab from a labfile, a containerlab topology or a compose file "
        "sent as the body, YAML or JSON. The answer is the lab, with `notes`: what the "
        "import changed or did not carry over, each naming the file's field.",
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        url_name="import",
        parser_classes=[LabfileTextParser],
    )
    def import_(self, request: Request) -> Response:
        body = request.data
        text = body if isinstance(body, LabfileText) else LabfileText(b"", None)
        named = request.query_params.get("format")
        source = None if named is None else _format(named, interop.FORMATS)
        lab, notes = services.lab_import_file(
            owner=acting_user(request), text=text.content, fmt=text.fmt, source=source
        )
        answer = self._represent(lab, status.HTTP_201_CREATED)
        answer.data["notes"] = [str(note) for note in notes]
        return answer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=[*LabfileFormat.values, "containerlab", "clab", "compose"],
                default="yaml",
            )
        ],
        responses={
            (200, "application/yaml"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            400: ERROR,
            404: ERROR,
        },
        description="The normalised labfile as a file download, or the lab as a "
        "containerlab topology or a compose file, what they cannot hold listed as comments "
        "at the top.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, YAMLRenderer])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        fmt = request.query_params.get("format", LabfileFormat.YAML)
        if fmt in LabfileFormat.values:
            return labfile_download(lab=self.get_object(), fmt=fmt)
        other = _format(
            fmt, (interop.CONTAINERLAB, interop.COMPOSE), also=tuple(LabfileFormat.values)
        )
        return other_tool_download(lab=self.get_object(), fmt=other)

    @extend_schema(
        responses={200: PlanSerializer, 400: ERROR, 404: ERROR},
        description="What deploying the lab would do (compiled as deployment 1 on the local "
        "host): the plan as data and as equivalent shell commands.",
    )
    @action(detail=True, methods=["get"])
    def plan(self, request: Request, pk: str | None = None) -> Response:
        return Response(selectors.lab_plan(lab=self.get_object()))

    @extend_schema(
        request=None,
        responses={202: DeploymentSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Deploy the lab's current definition on its host (the host its nodes "
        "name, else the first online host). Answers at once; follow the deployment's "
        "status on the lab's websocket or its URL. Refused while the lab has an active "
        "deployment, or when the host is offline or lacks a feature the lab needs.",
    )
    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, pk: str | None = None) -> Response:
        deployment = lifecycle.deployment_deploy(lab=self.get_object(), actor=acting_user(request))
        return _accepted(request, deployment)

    @extend_schema(
        operation_id="labs_destroy_deployment",
        request=None,
        responses={202: DeploymentSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Destroy every deployment of the lab that may own kernel objects; "
        "answers with the latest one.",
    )
    @action(detail=True, methods=["post"], url_path="destroy", url_name="destroy-deployment")
    def destroy_deployment(self, request: Request, pk: str | None = None) -> Response:
        deployment = lifecycle.deployment_destroy_lab(
            lab=self.get_object(), actor=acting_user(request)
        )
        return _accepted(request, deployment)

    @extend_schema(
        parameters=[
            OpenApiParameter("since", str, description="ISO 8601 time or Unix seconds"),
            OpenApiParameter("node", str),
            OpenApiParameter("format", str, enum=["json", "csv"], default="json"),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
            400: ERROR,
        },
        description="The lab's recent metrics samples, oldest first: per node CPU %, "
        "memory, pids, IO bytes and per interface counters and rates.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer])
    def metrics(self, request: Request, pk: str | None = None) -> HttpResponse:
        query = MetricsQuery.from_params(request.query_params)
        samples = metrics_selectors.lab_metrics(
            lab=self.get_object(), since=query.since, node=query.node
        )
        if query.fmt == "csv":
            return HttpResponse(
                metrics_selectors.metrics_csv(samples), content_type="text/csv; charset=utf-8"
            )
        return Response({"samples": samples})


def _format(value: str, allowed: tuple[str, ...], also: tuple[str, ...] = ()) -> str:
    """The interop format `value` names, if one of `allowed`; a 400 naming the field and
    every format the caller takes (`also` and `allowed`) if not."""
    fmt = interop.ALIASES.get(value.strip().lower())
    if fmt not in allowed:
        known = ", ".join([*also, *allowed])
        raise ApplicationError.for_field("format", f"{value!r} is not a format; use {known}.")
    return fmt


def _accepted(request: Request, deployment: Any) -> Response:
    """202 with the deployment's compact form: the compiled plan of a big lab is large, and
    its `url` serves it (with the labfile and drift) to whoever wants it."""
    fresh = DeploymentSerializer.fresh(deployment, compact=True)
    body = DeploymentSerializer(fresh, context={"request": request}).data
    return Response(body, status=status.HTTP_202_ACCEPTED)


def _validated(serializer_class: type[Any], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
