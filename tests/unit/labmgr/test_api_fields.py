"""The API's own serializer fields."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from labmgr.api.fields import DetailUrl
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create

PAIR = {
    "labfile": 1,
    "name": "pair",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.10.0.0/24"}},
    "nodes": {"a": {"networks": {"lan": {}}}},
}


class Fast(serializers.ModelSerializer):
    url = DetailUrl(view_name="lab-detail")

    class Meta:
        model = Lab
        fields = ["url"]


class Plain(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="lab-detail")

    class Meta:
        model = Lab
        fields = ["url"]


@pytest.mark.django_db
def test_detail_urls_are_those_django_rest_framework_gives() -> None:
    owner = User.objects.create_user("alice")
    labs = [lab_create(owner=owner, labfile_tree={**PAIR, "name": f"lab-{i}"}) for i in range(12)]
    request = APIRequestFactory().get("/api/labs/", HTTP_HOST="localhost:8443")

    fast = Fast(labs, many=True, context={"request": request}).data
    plain = Plain(labs, many=True, context={"request": request}).data

    assert [row["url"] for row in fast] == [row["url"] for row in plain]
    assert fast[11]["url"] == f"http://localhost:8443/api/labs/{labs[11].pk}/"
