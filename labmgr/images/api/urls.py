"""Routes of the images API, under a host; like every route, with and without the
trailing slash (the schema documents the first)."""

from django.urls import re_path

from labmgr.images.api.views import (
    HostImagesPruneView,
    HostImagesPullView,
    HostImagesRemoveView,
    HostImagesView,
    HostImageUploadChunkView,
    HostImageUploadLoadView,
    HostImageUploadsView,
)

IMAGES = r"^hosts/(?P<pk>[0-9]{1,18})/images"
UPLOAD = IMAGES + r"/uploads/(?P<key>[0-9a-f]{32})"


urlpatterns = [
    re_path(IMAGES + "/$", HostImagesView.as_view(), name="host-images"),
    re_path(IMAGES + "$", HostImagesView.as_view()),
    re_path(IMAGES + "/pull/$", HostImagesPullView.as_view(), name="host-images-pull"),
    re_path(IMAGES + "/pull$", HostImagesPullView.as_view()),
    re_path(IMAGES + "/remove/$", HostImagesRemoveView.as_view(), name="host-images-remove"),
    re_path(IMAGES + "/remove$", HostImagesRemoveView.as_view()),
    re_path(IMAGES + "/prune/$", HostImagesPruneView.as_view(), name="host-images-prune"),
    re_path(IMAGES + "/prune$", HostImagesPruneView.as_view()),
    re_path(IMAGES + "/uploads/$", HostImageUploadsView.as_view(), name="host-image-uploads"),
    re_path(IMAGES + "/uploads$", HostImageUploadsView.as_view()),
    re_path(
        UPLOAD + r"/chunks/(?P<n>[0-9]{1,7})/$",
        HostImageUploadChunkView.as_view(),
        name="host-image-upload-chunk",
    ),
    re_path(UPLOAD + r"/chunks/(?P<n>[0-9]{1,7})$", HostImageUploadChunkView.as_view()),
    re_path(UPLOAD + "/load/$", HostImageUploadLoadView.as_view(), name="host-image-upload-load"),
    re_path(UPLOAD + "/load$", HostImageUploadLoadView.as_view()),
]
