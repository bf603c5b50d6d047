"""`GET /metrics`: the Prometheus export (labmgr.monitoring.prometheus), for a scraper that
says `Authorization: Bearer <LABMGR_METRICS_TOKEN>`. Without that setting the export is
off; a wrong or missing token is a 401 that says what to send."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from labmgr.monitoring.prometheus import LabCollector

REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(LabCollector())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = str(settings.LABMGR_METRICS_TOKEN or "")
    if not token:
        return HttpResponse(
            "The metrics export is off: set LABMGR_METRICS_TOKEN (docs/prometheus.md).\n",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        response = HttpResponse(
            "Send the metrics token: Authorization: Bearer <LABMGR_METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="labmgr metrics"'
        return response
    # The text format every Prometheus reads (2.x and 3.x); the names are all plain.
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)
