"""Top-level URLs: the browser GUI (its dashboard at the root), admin, and the REST API
under /api/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("labmgr.web.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("labmgr.api.urls")),
]

handler404 = "labmgr.views.page_not_found"
handler500 = "labmgr.views.server_error"
