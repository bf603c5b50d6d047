"""Routes of the deployments API."""

from rest_framework.routers import SimpleRouter

from labmgr.deployments.api.views import DeploymentViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("deployments", DeploymentViewSet, basename="deployment")
