"""Top-level URLs: landing page, admin, and the REST API under /api/."""

from django.contrib import admin
from django.urls import include, path

from labmgr import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("api/", include("labmgr.api.urls")),
]

handler404 = "labmgr.views.page_not_found"
handler500 = "labmgr.views.server_error"
