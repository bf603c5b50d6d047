"""Random requests never make the API answer 5xx.

Schemathesis generates requests from our own OpenAPI schema (as alice, with a token);
a second test posts random JSON and YAML documents to the import endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
import yaml
from django.contrib.auth.models import User
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error

from labmgr.deployments.models import ScenarioRun
from labmgr.deployments.services import deployment_create
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.reservations.models import Reservation
from labmgr.wsgi import application

FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def in_process_wsgi() -> Iterator[None]:
    """Calls into the WSGI app stay inside the test's transaction, as Django's own test
    client arranges: the request signals would otherwise close the connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def alice_token(alice: User) -> str:
    return str(Token.objects.create(user=alice).key)


@pytest.fixture
def existing_ids(alice: User, alice_lab: Lab, shared_lab: Lab, bob: User) -> dict[str, int]:
    """An object of each kind, so generated requests also reach real rows, not only 404s."""
    host = Host.objects.create(name="Node A", slug="node-a")
    deployment = deployment_create(lab=alice_lab, owner=alice, host=host)
    start = timezone.now() + timedelta(hours=1)
    reservation = Reservation.objects.create(
        owner=alice, host=host, start=start, end=start + timedelta(hours=1), whole_host=True
    )
    run = ScenarioRun.objects.create(
        deployment=deployment, name="flap", steps=[{"at": 1.0, "action": {"down": "web:eth0"}}]
    )
    return {
        "labs": alice_lab.pk,
        "hosts": host.pk,
        "deployments": deployment.pk,
        "reservations": reservation.pk,
        "scenario-runs": run.pk,
    }


# Loaded at collection: the schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schema.parametrize()
@FUZZ
def test_no_generated_request_gets_a_server_error(
    case: Any, alice_token: str, existing_ids: dict[str, int], in_process_wsgi: None
) -> None:
    generated = str((case.path_parameters or {}).get("id", ""))
    if generated.isdigit() and int(generated) % 2 == 0:
        case.path_parameters["id"] = str(existing_ids[case.path.split("/")[2]])
    response = case.call(headers={"Authorization": f"Token {alice_token}"})
    case.validate_response(response, checks=[not_a_server_error])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
NAME = st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True)
# Documents shaped like labfiles, with random values where the keys expect something.
LABFILE_LIKE = st.fixed_dictionaries(
    {"labfile": st.sampled_from([1, 2, "1"]), "name": NAME | JSON},
    optional={
        "description": JSON,
        "networks": st.dictionaries(
            NAME,
            st.dictionaries(
                st.sampled_from(
                    ["driver", "subnet", "gateway", "mtu", "mode", "parent", "vni", "shaping"]
                ),
                JSON | st.sampled_from(["bridge", "macvlan", "10.0.0.0/24", "none"]),
            ),
        ),
        "nodes": st.dictionaries(
            NAME,
            st.dictionaries(
                st.sampled_from(
                    ["networks", "limits", "command", "routes", "privileged", "namespaces"]
                ),
                JSON,
            ),
        ),
    },
)


@pytest.mark.django_db
@FUZZ
@given(
    document=JSON | LABFILE_LIKE,
    as_yaml=st.booleans(),
    garbage=st.none() | st.binary(max_size=40),
)
def test_import_answers_201_or_400_never_500(
    document: object, as_yaml: bool, garbage: bytes | None
) -> None:
    user, _ = User.objects.get_or_create(username="fuzzer")
    client = APIClient()
    client.force_authenticate(user)
    if garbage is not None:
        body, content_type = garbage, "text/plain"
    elif as_yaml:
        body, content_type = yaml.safe_dump(document).encode(), "application/yaml"
    else:
        body, content_type = json.dumps(document).encode(), "application/json"
    response = client.post("/api/labs/import", body, content_type=content_type)
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        assert response.json()["errors"]
