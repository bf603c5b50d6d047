"""Top-level URLs: the browser GUI (its dashboard at the root), admin, the REST API under
/api/, and the Prometheus export at /metrics."""

from django.contrib import admin
from django.urls import include, path

from labmgr.monitoring.views import metrics

urlpatterns = [
    path("", include("labmgr.web.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("labmgr.api.urls")),
    path("metrics", metrics, name="metrics"),
]

handler404 = "labmgr.views.page_not_found"
handler500 = "labmgr.views.server_error"
