"""Site-wide behaviour: landing page, error pages, schema and docs, static assets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

Api = Callable[[User | None], APIClient]


def test_the_landing_page_asks_for_a_login(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_the_landing_page_links_admin_docs_and_api(client: Client, root: User) -> None:
    client.force_login(root)
    page = client.get("/").content.decode()
    for href in ('href="/admin/"', 'href="/api/docs/"', 'href="/api/"'):
        assert href in page


def test_an_unknown_api_url_is_a_json_404(client: Client) -> None:
    response = client.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "errors": {}}


def test_an_unknown_page_is_a_plain_404(client: Client) -> None:
    response = client.get("/nothing-here/")
    assert response.status_code == 404
    assert "There is nothing at this address" in response.content.decode()


@pytest.mark.parametrize(("path", "kind"), [("/api/labs/", "application/json"), ("/", "text/html")])
def test_a_server_error_shows_no_traceback(
    client: Client, monkeypatch: pytest.MonkeyPatch, root: User, path: str, kind: str
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("labmgr.labs.api.views.LabViewSet.list", explode)
    monkeypatch.setattr("labmgr.web.views.render", explode)
    client.force_login(root)
    client.raise_request_exception = False
    response = client.get(path)
    assert response.status_code == 500
    assert response["Content-Type"].startswith(kind)
    body = response.content.decode()
    assert "secret internals" not in body and "Traceback" not in body


def test_the_openapi_schema_lists_the_endpoints(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/labs/",
        "/api/labs/{id}/",
        "/api/labs/import/",
        "/api/labs/{id}/export/",
        "/api/labs/{id}/plan/",
        "/api/hosts/",
        "/api/deployments/{id}/",
        "/api/labfile.schema.json",
    ):
        assert path in paths
    assert "/api/labs/{id}" not in paths


def test_swagger_ui_uses_the_local_assets(client: Client) -> None:
    page = client.get("/api/docs/").content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn.jsdelivr" not in page


@pytest.mark.skipif(
    not (settings.BASE_DIR / "node_modules" / "swagger-ui-dist").is_dir(),
    reason="npm libraries are not installed (run the set-up)",
)
def test_the_swagger_ui_assets_are_served(client: Client) -> None:
    response = client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert response.status_code == 200


def test_the_labfile_schema_is_served(client: Client) -> None:
    response = client.get("/api/labfile.schema.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_api_root_lists_the_collections(api: Api, alice: User) -> None:
    body = api(alice).get("/api/").json()
    assert set(body) == {"labs", "hosts", "deployments", "reservations", "scenario-runs"}
