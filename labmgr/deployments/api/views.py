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
from labmgr.deployments import scenarios as scenario_runs
from labmgr.deployments.api.serializers import (
    DeploymentDetailSerializer,
    DeploymentSerializer,
    ExecResultSerializer,
    ExecSerializer,
    ScenarioRunSerializer,
)
from labmgr.deployments.models import Deployment, ScenarioRun
from labmgr.deployments.selectors import deployment_list_visible
from labmgr.errors import ApplicationError

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
SCENARIO_RUN = OpenApiResponse(
    description="A scenario run: `{id, deployment, lab, name, state, actor, steps, position, "
    "offset, running_since, elapsed, results, reason, created, finished}`; each result "
    "`{index, at, action, ok, message, time, output?, matrix?}`."
)
SCENARIO_START = inline_serializer(
    "ScenarioStart",
    {
        "scenario": serializers.CharField(required=False),
        "steps": serializers.ListField(child=serializers.DictField(), required=False),
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

    @extend_schema(
        methods=["GET"],
        request=None,
        responses={200: SCENARIO_RUN, 404: ERROR},
        description="The deployment's scenario runs, newest first.",
    )
    @extend_schema(
        methods=["POST"],
        request=SCENARIO_START,
        responses={201: SCENARIO_RUN, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description='Start the lab\'s scenario (`{"scenario": "flap"}`) or the steps sent '
        '(`{"steps": [{"at": "10s", "down": "r1:eth1"}]}`) on the running deployment; '
        "the control plane's beat runs each step at its time (docs/live.md).",
    )
    @action(detail=True, methods=["get", "post"])
    def scenarios(self, request: Request, pk: str | None = None) -> Response:
        deployment = self.get_object()
        if request.method == "GET":
            runs = deployment.scenario_runs.select_related("deployment", "actor")
            return Response([scenario_runs.run_document(run) for run in runs])
        data = request.data if isinstance(request.data, dict) else {}
        name = data.get("scenario")
        if name is not None and not isinstance(name, str):
            raise ApplicationError.for_field("scenario", "Name the scenario, like flap.")
        if name is None and "steps" not in data:
            raise ApplicationError.for_field(
                "scenario", "Name one of the lab's scenarios, or send its steps."
            )
        run = scenario_runs.scenario_start(
            deployment=deployment, actor=acting_user(request), name=name, steps=data.get("steps")
        )
        return Response(scenario_runs.run_document(run), status=status.HTTP_201_CREATED)


class ScenarioRunViewSet(viewsets.ReadOnlyModelViewSet[ScenarioRun]):
    """Scenario runs of the deployments the user may see; pause, resume, stop for the
    lab's owner, and the run with its results as a file."""

    lookup_value_regex = "[0-9]{1,18}"
    serializer_class = ScenarioRunSerializer

    def get_queryset(self) -> QuerySet[ScenarioRun]:
        visible = deployment_list_visible(user=acting_user(self.request))
        return ScenarioRun.objects.filter(deployment__in=visible).select_related(
            "deployment", "actor"
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response([scenario_runs.run_document(run) for run in self.get_queryset()[:200]])

    @extend_schema(responses={200: SCENARIO_RUN, 404: ERROR})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(scenario_runs.run_document(self.get_object()))

    def _act(self, request: Request, verb: str) -> Response:
        run = {
            "pause": scenario_runs.scenario_pause,
            "resume": scenario_runs.scenario_resume,
            "stop": scenario_runs.scenario_stop,
        }[verb](run=self.get_object(), actor=acting_user(request))
        return Response(scenario_runs.run_document(run))

    @extend_schema(request=None, responses={200: SCENARIO_RUN, 403: ERROR, 409: ERROR})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, "pause")

    @extend_schema(request=None, responses={200: SCENARIO_RUN, 403: ERROR, 409: ERROR})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, "resume")

    @extend_schema(
        request=None,
        responses={200: SCENARIO_RUN, 403: ERROR, 409: ERROR},
        description="Stop the run; the lab is restored to its labfile.",
    )
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, "stop")

    @extend_schema(
        request=None,
        responses={200: SCENARIO_RUN, 404: ERROR},
        description="The run with every result, as a JSON file to keep.",
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        response = Response(scenario_runs.run_document(run))
        name = f"{run.deployment.lab.name}-{run.name}-{run.pk}.json"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
