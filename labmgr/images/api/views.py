"""REST views of a host's images: every signed-in user reads what a host's store holds
(the deployments running each image named as far as the user may see them); admins pull,
remove, prune, and upload an archive for the host to load. Actions answer 202: the
host's agent does them and its report updates the list (and the Images page)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labmgr.accounts.requests import acting_user
from labmgr.errors import ApplicationError
from labmgr.hosts.models import Host
from labmgr.images import selectors, services, uploads
from labmgr.images.models import ImageUpload

ERROR = OpenApiResponse(description='`{"detail": "...", "errors": {"field.path": ["..."]}}`')
ACCEPTED = OpenApiResponse(
    description="`{host, action, refs, all, status}`: sent to the host's agent; its report "
    "updates the list and `last_action`."
)


def _body(request: Request) -> Mapping[str, Any]:
    data = request.data
    if not isinstance(data, Mapping):
        raise ApplicationError("The request body is a JSON object.")
    return data


class _HostView(APIView):
    def host(self, pk: str) -> Host:
        return Host.objects.get(pk=int(pk))


class HostImagesView(_HostView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 404: ERROR},
        description="The images the host's store holds, as its agent last said: references, "
        "manifest digest, size in bytes, last use (epoch seconds), and the deployments "
        "running each (id, lab, lab name, status) that you may see; `other_deployments` "
        "counts the others. `last_action` is the outcome of the last pull, removal, prune "
        "or load (`last_action_ok` null while one is under way).",
    )
    def get(self, request: Request, pk: str) -> Response:
        return Response(selectors.host_images(host=self.host(pk), user=acting_user(request)))


class HostImagesPullView(_HostView):
    @extend_schema(
        request=inline_serializer("ImagePull", {"ref": serializers.CharField()}),
        responses={202: ACCEPTED, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Admins: pull an image reference (`alpine:3.20`, "
        "`registry.example:5000/team/router@sha256:...`) into the host's store, with the "
        "registry's login if an admin set one.",
    )
    def post(self, request: Request, pk: str) -> Response:
        host, actor = self.host(pk), acting_user(request)
        sent = services.image_pull(host=host, actor=actor, ref=_body(request).get("ref"))
        return Response(sent, status=status.HTTP_202_ACCEPTED)


class HostImagesRemoveView(_HostView):
    @extend_schema(
        request=inline_serializer(
            "ImageRemove", {"refs": serializers.ListField(child=serializers.CharField())}
        ),
        responses={202: ACCEPTED, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Admins: remove images (references or `sha256:` digests) from the "
        "host's store; the agent keeps those a deployment runs and says so.",
    )
    def post(self, request: Request, pk: str) -> Response:
        host, actor = self.host(pk), acting_user(request)
        sent = services.image_remove(host=host, actor=actor, refs=_body(request).get("refs"))
        return Response(sent, status=status.HTTP_202_ACCEPTED)


class HostImagesPruneView(_HostView):
    @extend_schema(
        request=inline_serializer(
            "ImagePrune", {"all": serializers.BooleanField(default=True, required=False)}
        ),
        responses={202: ACCEPTED, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Admins: remove every image no deployment runs (`all`, the default), "
        "or only the least recently used unused ones until the store is within "
        "LABMGR_IMAGE_CACHE_MAX (`all: false`).",
    )
    def post(self, request: Request, pk: str) -> Response:
        host, actor = self.host(pk), acting_user(request)
        every = _body(request).get("all", True)
        sent = services.image_prune(host=host, actor=actor, all=every)
        return Response(sent, status=status.HTTP_202_ACCEPTED)


def _upload_body(upload: ImageUpload) -> dict[str, Any]:
    return {
        "upload": upload.key,
        "size": upload.size,
        "received": upload.received,
        "chunks": upload.chunks,
        "chunk_max": uploads.CHUNK_MAX,
        "name": upload.name or None,
    }


class HostImageUploadsView(_HostView):
    @extend_schema(
        request=inline_serializer(
            "ImageUploadStart",
            {
                "size": serializers.IntegerField(),
                "sha256": serializers.CharField(required=False),
                "name": serializers.CharField(required=False),
            },
        ),
        responses={201: OpenApiTypes.OBJECT, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Admins: start uploading a `docker save` or OCI archive of `size` bytes "
        "for the host to load (tagged `name` if given; `sha256`, if given, is checked "
        "against what arrives). Then PUT its chunks in order, each at most `chunk_max` "
        "bytes, to `.../uploads/{upload}/chunks/{n}` (n from 0) as "
        "application/octet-stream, and POST `.../uploads/{upload}/load`.",
    )
    def post(self, request: Request, pk: str) -> Response:
        host, actor, body = self.host(pk), acting_user(request), _body(request)
        upload = uploads.image_upload_start(
            host=host,
            actor=actor,
            size=body.get("size"),
            sha256=body.get("sha256"),
            name=body.get("name"),
        )
        return Response(_upload_body(upload), status=status.HTTP_201_CREATED)


class HostImageUploadChunkView(_HostView):
    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={200: OpenApiTypes.OBJECT, 400: ERROR, 403: ERROR, 404: ERROR, 413: ERROR},
        description="Admins: chunk `n` (from 0, in order, at most 1 MiB) of an upload.",
    )
    def put(self, request: Request, pk: str, key: str, n: str) -> Response:
        host, actor = self.host(pk), acting_user(request)
        upload = uploads.image_upload_chunk(
            host=host, actor=actor, key=key, n=int(n), data=request.body
        )
        return Response(_upload_body(upload))


class HostImageUploadLoadView(_HostView):
    @extend_schema(
        request=None,
        responses={202: ACCEPTED, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Admins: hand the whole uploaded archive to the host's agent to load.",
    )
    def post(self, request: Request, pk: str, key: str) -> Response:
        host, actor = self.host(pk), acting_user(request)
        sent = uploads.image_upload_finish(host=host, actor=actor, key=key)
        return Response(sent, status=status.HTTP_202_ACCEPTED)
