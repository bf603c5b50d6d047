"""The deployment's REST representation (read only) and the bodies of its actions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labmgr.api.fields import DetailUrl
from labmgr.deployments.models import Deployment, DeploymentNode, DeploymentStep, ScenarioRun
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab


class DeploymentStepSerializer(serializers.ModelSerializer[DeploymentStep]):
    class Meta:
        model = DeploymentStep
        fields = [
            "seq",
            "name",
            "status",
            "message",
            "target",
            "total",
            "seconds",
            "actor",
            "created",
        ]
        read_only_fields = fields


class DeploymentNodeSerializer(serializers.ModelSerializer[DeploymentNode]):
    interfaces = serializers.SerializerMethodField()

    class Meta:
        model = DeploymentNode
        fields = ["name", "host", "pid", "netns", "interfaces", "note"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_interfaces(self, node: DeploymentNode) -> Any:
        return node.interfaces


class DeploymentSerializer(serializers.ModelSerializer[Deployment]):
    url = DetailUrl(view_name="deployment-detail")
    lab_url: serializers.HyperlinkedRelatedField[Lab] = serializers.HyperlinkedRelatedField(
        source="lab", view_name="lab-detail", read_only=True
    )
    lab_name = serializers.CharField(source="lab.name", read_only=True)
    host: serializers.SlugRelatedField[Host] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    # Every host the lab is placed on; `host` is the first, where unplaced nodes run.
    hosts: serializers.SlugRelatedField[Host] = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True
    )
    owner = serializers.CharField(source="owner.username", read_only=True)
    steps = DeploymentStepSerializer(many=True, read_only=True)
    nodes = DeploymentNodeSerializer(many=True, read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "url",
            "lab",
            "lab_url",
            "lab_name",
            "host",
            "hosts",
            "owner",
            "status",
            "token",
            "created",
            "updated",
            "finished",
            "steps",
            "nodes",
            "images",  # reference -> the digest it ran (a redeploy runs the same)
        ]
        read_only_fields = fields

    @staticmethod
    def fresh(deployment: Deployment, *, compact: bool = False) -> Deployment:
        """The deployment re-read with what the representation needs (`compact`: without
        the labfile, plan and drift only the detail shows; they can weigh megabytes)."""
        query = Deployment.objects.select_related("lab", "host", "owner")
        if compact:
            query = query.defer("labfile", "plan", "drift")
        return query.prefetch_related("steps", "nodes", "hosts").get(pk=deployment.pk)


class DeploymentDetailSerializer(DeploymentSerializer):
    """Adds the drift, the labfile snapshot and the compiled plan, which can be large."""

    labfile = serializers.SerializerMethodField()
    plan = serializers.SerializerMethodField()
    drift = serializers.SerializerMethodField()
    live = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [
            *DeploymentSerializer.Meta.fields,
            "drift",
            "drift_checked",
            "labfile",
            "plan",
            "live",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_labfile(self, deployment: Deployment) -> Any:
        return deployment.labfile

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_plan(self, deployment: Deployment) -> Any:
        return deployment.plan

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_drift(self, deployment: Deployment) -> Any:
        return deployment.drift

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_live(self, deployment: Deployment) -> Any:
        """What live changes made differ from the labfile: impairments by interface,
        interfaces down, nodes stopped (docs/live.md)."""
        return {"impairments": {}, "down": [], "stopped": [], **(deployment.live or {})}


class ExecSerializer(serializers.Serializer[Any]):
    node = serializers.CharField(max_length=31)
    argv = serializers.ListField(
        child=serializers.CharField(max_length=4096, trim_whitespace=False),
        min_length=1,
        max_length=256,
    )
    timeout = serializers.FloatField(min_value=0.1, default=10.0)

    def validate_timeout(self, value: float) -> float:
        return min(value, float(settings.LABMGR_EXEC_TIMEOUT))


class ExecResultSerializer(serializers.Serializer[Any]):
    exit = serializers.IntegerField()
    stdout = serializers.CharField()
    stderr = serializers.CharField()


class ScenarioRunSerializer(serializers.ModelSerializer[ScenarioRun]):
    """A scenario run as labmgr.deployments.scenarios.run_document shows it."""

    class Meta:
        model = ScenarioRun
        fields = ["id", "name", "state", "steps", "position", "results", "reason", "created"]
        read_only_fields = fields

    def to_representation(self, instance: ScenarioRun) -> dict[str, Any]:
        from labmgr.deployments.scenarios import run_document

        return run_document(instance)
