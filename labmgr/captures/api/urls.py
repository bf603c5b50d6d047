"""Routes of the captures API, under a deployment; like every route, with and without the
trailing slash (the schema documents the first)."""

from django.urls import re_path

from labmgr.captures.api.views import (
    CaptureDetailView,
    CaptureListView,
    CapturePcapView,
    CaptureStopView,
)

DEPLOYMENT = r"^deployments/(?P<pk>[0-9]{1,18})/captures"
CAPTURE = DEPLOYMENT + r"/(?P<cid>[0-9]{1,18})"

urlpatterns = [
    re_path(DEPLOYMENT + "/$", CaptureListView.as_view(), name="capture-list"),
    re_path(DEPLOYMENT + "$", CaptureListView.as_view()),
    re_path(CAPTURE + "/$", CaptureDetailView.as_view(), name="capture-detail"),
    re_path(CAPTURE + "$", CaptureDetailView.as_view()),
    re_path(CAPTURE + "/stop/$", CaptureStopView.as_view(), name="capture-stop"),
    re_path(CAPTURE + "/stop$", CaptureStopView.as_view()),
    re_path(CAPTURE + "/pcap/$", CapturePcapView.as_view(), name="capture-pcap"),
    re_path(CAPTURE + "/pcap$", CapturePcapView.as_view()),
]
