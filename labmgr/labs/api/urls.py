"""Routes of the labs API."""

from rest_framework.routers import SimpleRouter

from labmgr.labs.api.views import LabViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("labs", LabViewSet, basename="lab")
