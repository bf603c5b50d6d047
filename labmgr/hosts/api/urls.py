"""Routes of the hosts API, gathered under /api/ by labmgr.api.urls."""

from rest_framework.routers import SimpleRouter

from labmgr.hosts.api.views import HostViewSet

router = SimpleRouter()
router.register("hosts", HostViewSet, basename="host")
