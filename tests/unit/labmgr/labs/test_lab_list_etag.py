"""A client that polls the lab list sends back the ETag it got and is answered 304, with
no body, until something it would see changes."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.labs.models import Lab
from labmgr.labs.services import lab_update

Api = Callable[[User | None], APIClient]


def test_polling_the_list_is_answered_304_until_a_lab_changes(
    api: Api, alice: User, alice_lab: Lab
) -> None:
    client = api(alice)
    first = client.get("/api/labs/")
    etag = first.headers["ETag"]
    again = client.get("/api/labs/", HTTP_IF_NONE_MATCH=etag)
    assert (again.status_code, again.content) == (304, b"")
    lab_update(lab=alice_lab, description="changed", actor=alice)
    changed = client.get("/api/labs/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["results"][0]["description"] == "changed"
    assert changed.headers["ETag"] != etag


def test_another_users_list_is_not_mistaken_for_yours(
    api: Api, alice: User, bob: User, alice_lab: Lab
) -> None:
    etag = api(alice).get("/api/labs/").headers["ETag"]
    theirs = api(bob).get("/api/labs/", HTTP_IF_NONE_MATCH=etag)
    assert theirs.status_code == 200
    assert theirs.json()["results"] == []
