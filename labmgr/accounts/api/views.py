"""The API's login: a user name and password for a fresh token, and revoking it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labmgr.accounts.requests import acting_user
from labmgr.accounts.tokens import token_expires, token_issue, token_revoke

if TYPE_CHECKING:  # the protocol is the stubs' own, not DRF's
    from rest_framework.permissions import _SupportsHasPermission

ERROR = OpenApiResponse(description='`{"detail": "...", "errors": {"field.path": ["..."]}}`')


class Credentials(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


TOKEN = inline_serializer(
    "IssuedToken", {"token": serializers.CharField(), "expires": serializers.DateTimeField()}
)


class TokenView(APIView):
    """POST: a fresh token for a user name and password (the old one stops working);
    throttled like the login page (429 after too many failures). DELETE: revoke the
    token of the user making the request."""

    def _logging_in(self) -> bool:
        # The schema generator asks without a request.
        return getattr(self.request, "method", None) == "POST"

    def get_authenticators(self) -> list[BaseAuthentication]:
        # Logging in takes no credentials but the body's: a stale token in the header
        # must not stand in the way of getting a fresh one.
        return [] if self._logging_in() else super().get_authenticators()

    def get_permissions(self) -> Sequence[_SupportsHasPermission]:
        return [AllowAny()] if self._logging_in() else super().get_permissions()

    def get_authenticate_header(self, request: Request) -> str:
        # A failed login is a 401 like any missing credentials (DRF says 403 when the
        # view has no authenticator to name).
        return "Token"

    @extend_schema(request=Credentials, responses={201: TOKEN, 400: ERROR, 401: ERROR, 429: ERROR})
    def post(self, request: Request) -> Response:
        body = Credentials(data=request.data)
        body.is_valid(raise_exception=True)
        # The Django request: django-axes counts failures on it and its middleware turns
        # a lockout into the 429.
        user = authenticate(
            request._request,
            username=body.validated_data["username"],
            password=body.validated_data["password"],
        )
        if user is None:
            raise AuthenticationFailed("The user name or password is wrong.")
        token = token_issue(user=user)
        expires = token_expires(token)
        return Response(
            {"token": token.key, "expires": expires.isoformat() if expires else None},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses={204: None, 401: ERROR})
    def delete(self, request: Request) -> Response:
        token_revoke(user=acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
