"""REST views of a deployment's captures: listed and downloaded by whoever may see the
lab, started, stopped and deleted by its owner or an admin (404 for the others)."""

from __future__ import annotations

from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labmgr.accounts.requests import acting_user
from labmgr.captures import selectors, services
from labmgr.captures.api.serializers import CaptureSerializer, CaptureStartSerializer
from labmgr.captures.models import Capture
from labmgr.deployments.models import Deployment

ERROR = OpenApiResponse(description='`{"detail": "...", "errors": {"field.path": ["..."]}}`')
PCAP_TYPE = "application/vnd.tcpdump.pcap"


def _with_file_flag(captures: QuerySet[Capture]) -> QuerySet[Capture]:
    return captures.annotate(
        has_pcap=ExpressionWrapper(Q(pcap__isnull=False), output_field=BooleanField())
    )


class _CaptureView(APIView):
    def deployment(self, pk: str) -> Deployment:
        return selectors.deployment_for_captures(user=acting_user(self.request), pk=int(pk))

    def capture(self, pk: str, cid: str) -> Capture:
        captures = _with_file_flag(selectors.capture_list(deployment=self.deployment(pk)))
        return captures.get(pk=int(cid))

    def represent(self, capture: Capture, code: int = status.HTTP_200_OK) -> Response:
        fresh = _with_file_flag(Capture.objects.defer("pcap")).get(pk=capture.pk)
        body = CaptureSerializer(fresh, context={"request": self.request}).data
        return Response(body, status=code)


class CaptureListView(_CaptureView):
    @extend_schema(
        responses={200: CaptureSerializer(many=True), 404: ERROR},
        description="The deployment's packet captures, newest first: state, packets and "
        "bytes so far (updated about every second while one runs), and the file's URL "
        "once it has ended.",
    )
    def get(self, request: Request, pk: str) -> Response:
        deployment = self.deployment(pk)
        services.captures_expire()
        captures = _with_file_flag(selectors.capture_list(deployment=deployment))
        body = CaptureSerializer(captures, many=True, context={"request": request}).data
        return Response(body)

    @extend_schema(
        request=CaptureStartSerializer,
        responses={201: CaptureSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Start tcpdump on an interface of a node of the running deployment, "
        "with an optional filter (pcap-filter syntax, compiled on the host: a bad one is "
        "a 400 on `filter`). It stops by itself after `max_bytes` or `max_seconds` "
        "(default and most: the server's limits), when the lab is destroyed, or on stop.",
    )
    def post(self, request: Request, pk: str) -> Response:
        deployment = self.deployment(pk)
        body = CaptureStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(body.validated_data)
        capture = services.capture_start(deployment=deployment, actor=acting_user(request), **data)
        return self.represent(capture, status.HTTP_201_CREATED)


class CaptureDetailView(_CaptureView):
    @extend_schema(responses={200: CaptureSerializer, 404: ERROR})
    def get(self, request: Request, pk: str, cid: str) -> Response:
        return self.represent(self.capture(pk, cid))

    @extend_schema(
        responses={204: None, 403: ERROR, 404: ERROR},
        description="Delete the capture and its file; a running one is stopped first.",
    )
    def delete(self, request: Request, pk: str, cid: str) -> Response:
        services.capture_delete(capture=self.capture(pk, cid), actor=acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CaptureStopView(_CaptureView):
    @extend_schema(
        request=None,
        responses={202: CaptureSerializer, 403: ERROR, 404: ERROR},
        description="Stop a running capture; its state becomes `stopped` (with the file) "
        "a moment later. Stopping an ended capture changes nothing.",
    )
    def post(self, request: Request, pk: str, cid: str) -> Response:
        capture = services.capture_stop(capture=self.capture(pk, cid), actor=acting_user(request))
        return self.represent(capture, status.HTTP_202_ACCEPTED)


class CapturePcapView(_CaptureView):
    @extend_schema(
        responses={(200, PCAP_TYPE): OpenApiTypes.BINARY, 404: ERROR},
        description="The capture's pcap file (it opens in Wireshark); 404 until it ended.",
    )
    def get(self, request: Request, pk: str, cid: str) -> HttpResponse:
        capture = self.capture(pk, cid)
        data = selectors.capture_pcap(capture=capture)
        if data is None:
            raise Capture.DoesNotExist
        response = HttpResponse(data, content_type=PCAP_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{capture.filename}"'
        return response
