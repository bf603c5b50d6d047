"""Routes of the labs API, gathered under /api/ by labmgr.api.urls."""

from rest_framework.routers import SimpleRouter

from labmgr.labs.api.views import LabViewSet

router = SimpleRouter()
router.register("labs", LabViewSet, basename="lab")
