"""Routes of the reservations API, gathered under /api/ by labmgr.api.urls."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from labmgr.reservations.api.views import (
    HostAvailabilityView,
    ReservationPolicyView,
    ReservationViewSet,
)

router = SimpleRouter()
router.register("reservations", ReservationViewSet, basename="reservation")

# A host's calendar, beside the hosts' own routes; like every route, with and without
# the trailing slash (the schema documents the first).
urlpatterns = [
    re_path(
        r"^hosts/(?P<pk>[0-9]{1,18})/availability/$",
        HostAvailabilityView.as_view(),
        name="host-availability",
    ),
    re_path(r"^hosts/(?P<pk>[0-9]{1,18})/availability$", HostAvailabilityView.as_view()),
    re_path(r"^reservations/policy/?$", ReservationPolicyView.as_view(), name="reservation-policy"),
]
