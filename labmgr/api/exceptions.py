"""One JSON error shape for the whole API: `{"detail": sentence, "errors": {path: [msgs]}}`.

`errors` is empty when the problem is not about a field. Labfile errors keep the field
paths of `LabfileError.as_dict()` unchanged ("nodes.web.limits.memory").
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labmgr.errors import ApplicationError
from labplan.errors import LabfileError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, LabfileError):
        return _error("The labfile is invalid.", exc.as_dict(), status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ApplicationError):
        return _error(exc.message, exc.errors, exc.status)
    if isinstance(exc, RequestDataTooBig):
        return _error(
            "The request body is larger than the limit of 1 MiB.",
            {},
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = _reshape(exc, response.data)
    return response


def _error(detail: str, errors: dict[str, list[str]], code: int) -> Response:
    return Response({"detail": detail, "errors": errors}, status=code)


def _reshape(exc: Exception, data: Any) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        return {"detail": "The request is invalid.", "errors": flatten_errors(data)}
    detail = data.get("detail", "") if isinstance(data, dict) else str(data)
    return {"detail": str(detail), "errors": {}}


def flatten_errors(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as dotted paths, like labfile errors."""
    if isinstance(data, dict):
        flat: dict[str, list[str]] = {}
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            for sub, messages in flatten_errors(value, path).items():
                flat.setdefault(sub, []).extend(messages)
        return flat
    if isinstance(data, list):
        if all(not isinstance(item, dict | list) for item in data):
            return {prefix or "non_field_errors": [str(item) for item in data]}
        flat = {}
        for index, item in enumerate(data):
            path = f"{prefix}.{index}" if prefix else str(index)
            for sub, messages in flatten_errors(item, path).items():
                flat.setdefault(sub, []).extend(messages)
        return flat
    return {prefix or "non_field_errors": [str(data)]}
