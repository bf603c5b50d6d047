"""API views that belong to no app: the labfile's JSON Schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labplan.schema import json_schema


class LabfileSchemaView(APIView):
    """The JSON Schema (2020-12) of the labfile, generated from the validator's fields."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="labfile_schema")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(json_schema())
