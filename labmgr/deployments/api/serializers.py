"""The deployment's REST representation (read only for now)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labmgr.deployments.models import Deployment, DeploymentStep


class DeploymentStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentStep
        fields = ["seq", "name", "status", "message", "created"]
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="deployment-detail")
    lab_url = serializers.HyperlinkedRelatedField(
        source="lab", view_name="lab-detail", read_only=True
    )
    lab_name = serializers.CharField(source="lab.name", read_only=True)
    host = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    steps = DeploymentStepSerializer(many=True, read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "url",
            "lab",
            "lab_url",
            "lab_name",
            "host",
            "owner",
            "status",
            "token",
            "created",
            "updated",
            "finished",
            "steps",
        ]
        read_only_fields = fields


class DeploymentDetailSerializer(DeploymentSerializer):
    """Adds the labfile snapshot and the compiled plan, which can be large."""

    labfile = serializers.SerializerMethodField()
    plan = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "labfile", "plan"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_labfile(self, deployment: Deployment) -> Any:
        return deployment.labfile

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_plan(self, deployment: Deployment) -> Any:
        return deployment.plan
