"""Routes of the deployments API, gathered under /api/ by labmgr.api.urls."""

from rest_framework.routers import SimpleRouter

from labmgr.deployments.api.views import DeploymentViewSet, ScenarioRunViewSet

router = SimpleRouter()
router.register("deployments", DeploymentViewSet, basename="deployment")
router.register("scenario-runs", ScenarioRunViewSet, basename="scenario-run")
