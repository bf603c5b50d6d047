"""Read-only REST views of deployments, visible to whoever may see their lab."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from labmgr.deployments.api.serializers import DeploymentDetailSerializer, DeploymentSerializer
from labmgr.deployments.models import Deployment
from labmgr.deployments.selectors import deployment_list_visible


class DeploymentViewSet(viewsets.ReadOnlyModelViewSet):
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[Deployment]:
        return deployment_list_visible(user=self.request.user)

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Deployment]]:
        return DeploymentDetailSerializer if self.action == "retrieve" else DeploymentSerializer
