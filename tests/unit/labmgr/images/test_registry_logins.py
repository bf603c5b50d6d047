"""Registry logins an admin sets travel only sealed under the receiving host's key, and
only those of the registries a host's pulls name; the admin never sees a password back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from labmgr.deployments import dispatch
from labmgr.hosts.models import Host
from labmgr.images.logins import apply_logins, logins_sealed, registry_of
from labmgr.images.models import RegistryLogin
from labplan import envelope
from labplan.envelope import Refused
from tests.unit.labmgr.conftest import Broker

SECRET = "s3cret-Pa55"


def plan(*parts: tuple[str, list[str]]) -> dict[str, Any]:
    return {
        "hosts": [
            {"host": slug, "ops": [{"op": "pull_image", "ref": r, "digest": None} for r in refs]}
            for slug, refs in parts
        ]
    }


def opened(host: Host, sealed: str) -> list[dict[str, str]]:
    data: list[dict[str, str]] = json.loads(envelope.open_secret(bytes.fromhex(host.key), sealed))
    return data


@pytest.fixture
def logins(db: None) -> None:
    RegistryLogin.objects.create(registry="registry.example:5000", username="ci", password=SECRET)
    RegistryLogin.objects.create(registry="docker.io", username="hub", password="hub-pass")


@pytest.mark.parametrize(
    ("ref", "registry"),
    [
        ("docker.io/library/alpine:3.20", "docker.io"),
        ("alpine", "docker.io"),
        ("frrouting/frr:v8.4.1", "docker.io"),
        ("registry.example:5000/team/router@sha256:" + "a" * 64, "registry.example:5000"),
        ("localhost/x", "localhost"),
        ("index.docker.io/library/alpine", "docker.io"),
    ],
)
def test_a_reference_pulls_from_the_registry_docker_would_ask(ref: str, registry: str) -> None:
    assert registry_of(ref) == registry


def test_each_host_gets_the_logins_of_its_own_pulls_sealed_under_its_key(
    broker: Broker, logins: None
) -> None:
    one, two = Host.objects.get(slug="lab-1"), Host.objects.get(slug="lab-2")
    sealed = apply_logins(
        plan=plan(
            ("lab-1", ["registry.example:5000/team/router:1"]),
            ("lab-2", ["docker.io/library/alpine:3.20"]),
        ),
        hosts=[one, two],
    )
    assert SECRET not in sealed["lab-1"]
    assert opened(one, sealed["lab-1"]) == [
        {"registry": "registry.example:5000", "username": "ci", "password": SECRET}
    ]
    assert [login["registry"] for login in opened(two, sealed["lab-2"])] == ["docker.io"]
    with pytest.raises(Refused):
        opened(two, sealed["lab-1"])


def test_a_pull_from_a_registry_without_a_login_carries_none(broker: Broker, logins: None) -> None:
    host = Host.objects.get(slug="lab-1")
    assert logins_sealed(host=host, refs=["quay.io/team/x:1"]) == ""
    assert apply_logins(plan=plan(("lab-2", ["alpine"])), hosts=[host]) == {"lab-1": ""}


def test_an_apply_carries_its_sealed_logins_and_one_without_none(broker: Broker) -> None:
    dispatch.apply(host="lab-1", deployment=3, plan={}, previous=None, registries="abcd")
    dispatch.apply(host="lab-1", deployment=4, plan={}, previous=None, registries="")
    assert broker.sent[0][1]["registries"] == "abcd"
    assert "registries" not in broker.sent[1][1]


@pytest.fixture
def admin_client(client: Client, root: User) -> Client:
    client.force_login(root)
    return client


def test_an_admin_sets_a_login_and_never_sees_its_password_again(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        "/admin/images/registrylogin/add/",
        {"registry": "registry.example:5000", "username": "ci", "password": SECRET},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    login = RegistryLogin.objects.get()
    assert login.password == SECRET
    page = admin_client.get(f"/admin/images/registrylogin/{login.pk}/change/").content.decode()
    assert SECRET not in page
    assert admin_client.get("/admin/images/registrylogin/").status_code == 200
    # A change that leaves the password empty keeps it.
    admin_client.post(
        f"/admin/images/registrylogin/{login.pk}/change/",
        {"registry": "registry.example:5000", "username": "robot", "password": ""},
    )
    login.refresh_from_db()
    assert (login.username, login.password) == ("robot", SECRET)


def test_a_login_for_what_is_not_a_registry_is_refused_naming_it(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/images/registrylogin/add/",
        {"registry": "https://registry.example/", "username": "ci", "password": SECRET},
    )
    assert response.status_code == 200
    assert "is not a registry" in response.content.decode()
    assert not RegistryLogin.objects.exists()
