"""Routes of the hosts API."""

from rest_framework.routers import SimpleRouter

from labmgr.hosts.api.views import HostViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("hosts", HostViewSet, basename="host")
