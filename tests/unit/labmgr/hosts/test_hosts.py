from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.hosts.models import Host

Api = Callable[[User | None], APIClient]


def test_a_hosts_queue_is_named_after_its_slug(db: None) -> None:
    host = Host.objects.create(name="Lab server 1", slug="lab-1")
    assert (str(host), host.queue, host.status) == ("Lab server 1", "host.lab-1", "unknown")


def test_every_logged_in_user_sees_every_host(api: Api, charlie: User) -> None:
    host = Host.objects.create(name="Lab server 1", slug="lab-1", cpus=8, memory=2**34)
    [item] = api(charlie).get("/api/hosts/").json()["results"]
    assert (item["slug"], item["queue"], item["cpus"], item["memory"]) == (
        "lab-1",
        "host.lab-1",
        8,
        2**34,
    )
    assert api(charlie).get(f"/api/hosts/{host.pk}").json()["name"] == "Lab server 1"


def test_hosts_are_read_only_in_the_api(api: Api, root: User) -> None:
    response = api(root).post("/api/hosts/", {"name": "x", "slug": "x"}, format="json")
    assert response.status_code == 405


def test_an_anonymous_client_sees_no_host(api: Api, db: None) -> None:
    assert api(None).get("/api/hosts/").status_code == 401
