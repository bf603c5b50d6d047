"""REST views of deployments (visible to whoever may see their lab) and their actions
(only the lab's owner or an admin), thin over `labmgr.deployments.lifecycle`."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from labmgr.accounts.requests import acting_user
from labmgr.deployments import connectivity, lifecycle
from labmgr.deployments import live as live_changes
from labmgr.deployments.api.serializers import (
    DeploymentDetailSerializer,
    DeploymentSerializer,
    ExecResultSerializer,
    ExecSerializer,
)
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_list_visible

ERROR = OpenApiResponse(description='`{"detail": "...", "errors": {"field.path": ["..."]}}`')
PROBE = inline_serializer(
    "ConnectivityProbe",
    {
        "src": serializers.CharField(),
        "dst": serializers.CharField(),
        "address": serializers.IPAddressField(protocol="IPv4"),
        "network": serializers.CharField(),
        "reachable": serializers.BooleanField(),
        "expected": serializers.BooleanField(),
    },
)
CONNECTIVITY = inline_serializer(
    "ConnectivityReport",
    {
        "deployment": serializers.IntegerField(),
        "nodes": serializers.ListField(child=serializers.CharField()),
        "probes": serializers.ListField(child=PROBE),
    },
)
LIVE_STATE = inline_serializer(
    "LiveState",
    {
        "interfaces": serializers.ListField(child=serializers.DictField()),
        "links": serializers.ListField(child=serializers.ListField()),
        "nodes": serializers.ListField(child=serializers.DictField()),
    },
)
LIVE_OUTCOME = inline_serializer(
    "LiveOutcome",
    {
        "deployment": serializers.IntegerField(),
        "action": serializers.CharField(),
        "ok": serializers.BooleanField(),
        "error": serializers.CharField(),
        "live": serializers.DictField(),
        "seconds": serializers.FloatField(),
    },
)
# An action answers at once with the compact form; its `url` gives the detail.
ACTION_RESPONSES = {202: DeploymentSerializer, 403: ERROR, 404: ERROR, 409: ERROR}


class DeploymentViewSet(viewsets.ReadOnlyModelViewSet[Deployment]):
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[Deployment]:
        return deployment_list_visible(user=acting_user(self.request))

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Deployment]]:
        return DeploymentSerializer if self.action == "list" else DeploymentDetailSerializer

    def _accepted(self, deployment: Deployment) -> Response:
        fresh = DeploymentSerializer.fresh(deployment, compact=True)
        body = DeploymentSerializer(fresh, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Apply the lab's current definition to this running deployment: "
        "only the difference is changed; unchanged nodes keep running with their links.",
    )
    @action(detail=True, methods=["post"])
    def redeploy(self, request: Request, pk: str | None = None) -> Response:
        deployment = lifecycle.deployment_redeploy(
            deployment=self.get_object(), actor=acting_user(request)
        )
        return self._accepted(deployment)

    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Stop a pending or deploying deployment; what was built is destroyed.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        deployment = lifecycle.deployment_cancel(
            deployment=self.get_object(), actor=acting_user(request)
        )
        return self._accepted(deployment)

    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Ask the host to compare its kernel with the plan; the drift (what is "
        "missing or extra) appears in the deployment and on the lab's websocket.",
    )
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str | None = None) -> Response:
        deployment = lifecycle.deployment_check(
            deployment=self.get_object(), actor=acting_user(request)
        )
        return self._accepted(deployment)

    @extend_schema(
        request=ExecSerializer,
        responses={200: ExecResultSerializer, 403: ERROR, 404: ERROR, 409: ERROR, 504: ERROR},
        description="Run a command (no shell) in a node of the running deployment and "
        "wait for its exit status and output.",
    )
    @action(detail=True, methods=["post"], url_path="exec", url_name="exec")
    def exec_(self, request: Request, pk: str | None = None) -> Response:
        body = ExecSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(body.validated_data)
        outcome = lifecycle.deployment_exec(
            deployment=self.get_object(),
            actor=acting_user(request),
            node=data["node"],
            argv=list(data["argv"]),
            timeout=data["timeout"],
        )
        return Response(outcome)

    @extend_schema(
        request=None,
        responses={
            200: CONNECTIVITY,
            400: ERROR,
            403: ERROR,
            404: ERROR,
            409: ERROR,
            502: ERROR,
            504: ERROR,
        },
        description="Ping every address of every other node from each node of the running "
        "deployment (labs of at most 20 nodes) and say, for each probe, whether it answered "
        "and whether the lab's networks lead to expect it.",
    )
    @action(detail=True, methods=["post"])
    def connectivity(self, request: Request, pk: str | None = None) -> Response:
        report = connectivity.deployment_connectivity(
            deployment=self.get_object(), actor=acting_user(request)
        )
        return Response(report)

    @extend_schema(
        methods=["GET"],
        request=None,
        responses={200: LIVE_STATE, 404: ERROR},
        description="Every interface a live change can reach, with its impairments now and "
        "whether it is up, the lab's links, and each node's state (running, stopped).",
    )
    @extend_schema(
        methods=["POST"],
        request=inline_serializer("LiveAction", {"set": serializers.DictField(required=False)}),
        responses={200: LIVE_OUTCOME, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 504: ERROR},
        description="Change the running lab without a redeploy, one action a call "
        '(docs/live.md): `{"set": {"link": "r1:eth1", "loss": "30%"}}`, `{"down": "r1:eth1"}`, '
        '`{"up": {"link": "r1:eth1"}}`, `{"stop": "r1"}` (also start, restart, kill), '
        '`{"restore": "all"}`. Kept in the deployment\'s steps with who asked; a change the '
        "kernel refuses is undone (409).",
    )
    @action(detail=True, methods=["get", "post"])
    def live(self, request: Request, pk: str | None = None) -> Response:
        deployment = self.get_object()
        if request.method == "GET":
            return Response(live_changes.deployment_live_state(deployment))
        outcome = live_changes.deployment_live(
            deployment=deployment, actor=acting_user(request), action=request.data
        )
        return Response(outcome)
