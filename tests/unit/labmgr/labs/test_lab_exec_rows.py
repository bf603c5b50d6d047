"""A node's exec commands through the rows and the REST API: kept in order, exported as
written, and a bad one named by its path."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.labs.models import Node
from labmgr.labs.selectors import lab_export
from labmgr.labs.services import lab_import
from labplan.labfile import dump, load

Api = Callable[[User | None], APIClient]

CONFIGURED = """\
labfile: 2
name: configured
nodes:
  r1:
    exec:
      - [sh, -c, "echo 1 > /tmp/one"]
      - [touch, /tmp/two]
  r2: {}
"""

pytestmark = pytest.mark.django_db


def test_exec_commands_survive_the_rows(alice: User) -> None:
    lab = lab_import(owner=alice, text=CONFIGURED)

    assert Node.objects.get(lab=lab, name="r1").exec == [
        ["sh", "-c", "echo 1 > /tmp/one"],
        ["touch", "/tmp/two"],
    ]
    exported = json.loads(lab_export(lab=lab, fmt="json"))
    assert exported == dump(load(CONFIGURED))
    assert lab.version == 2


def test_a_bad_command_is_named_by_its_path_over_the_api(api: Api, alice: User) -> None:
    answer = api(alice).post(
        "/api/labs/import",
        CONFIGURED.replace("[touch, /tmp/two]", "touch /tmp/two"),
        content_type="application/yaml",
    )

    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["nodes.r1.exec.1"]
