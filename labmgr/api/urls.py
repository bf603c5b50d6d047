"""The API root: every app's router under one DefaultRouter, plus schema and docs."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from labmgr.accounts.api.urls import urlpatterns as accounts_urls
from labmgr.api.routers import OptionalSlashRouter
from labmgr.api.views import LabfileSchemaView
from labmgr.captures.api.urls import urlpatterns as captures_urls
from labmgr.deployments.api.urls import router as deployments_router
from labmgr.hosts.api.urls import router as hosts_router
from labmgr.images.api.urls import urlpatterns as images_urls
from labmgr.labs.api.urls import router as labs_router
from labmgr.reservations.api.urls import router as reservations_router
from labmgr.reservations.api.urls import urlpatterns as reservations_urls

router = OptionalSlashRouter()
for app_router in (labs_router, hosts_router, deployments_router, reservations_router):
    router.registry.extend(app_router.registry)

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("labfile.schema.json", LabfileSchemaView.as_view(), name="labfile-schema"),
    *accounts_urls,
    *reservations_urls,
    *captures_urls,
    *images_urls,
    *router.urls,
]
