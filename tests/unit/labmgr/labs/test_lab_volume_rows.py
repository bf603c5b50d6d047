"""A lab's volumes and its nodes' mounts through the rows and the REST API: kept as
written, exported the same, a bad mount named by its path, and a host path refused to a
plain user's import with nothing stored."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.labs.models import Lab, Node
from labmgr.labs.selectors import lab_export
from labmgr.labs.services import lab_import
from labplan.labfile import dump, load

Api = Callable[[User | None], APIClient]

SHARED = """\
labfile: 2
name: shared
volumes:
  data: {size: 32M}
nodes:
  web:
    mounts:
      - {volume: data, path: /srv/www, readonly: true}
  app:
    mounts:
      - {volume: data, path: /var/lib/app}
"""

pytestmark = pytest.mark.django_db


def test_volumes_and_mounts_survive_the_rows(alice: User) -> None:
    lab = lab_import(owner=alice, text=SHARED)

    assert Lab.objects.get(pk=lab.pk).volumes == {"data": {"size": "32M"}}
    assert Node.objects.get(lab=lab, name="web").mounts == [
        {"volume": "data", "path": "/srv/www", "readonly": True}
    ]
    assert json.loads(lab_export(lab=lab, fmt="json")) == dump(load(SHARED))


def test_a_bad_mount_is_named_by_its_path_over_the_api(api: Api, alice: User) -> None:
    answer = api(alice).post(
        "/api/labs/import",
        SHARED.replace("volume: data, path: /var/lib/app", "volume: dta, path: /var/lib/app"),
        content_type="application/yaml",
    )

    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["nodes.app.mounts.0.volume"]
    assert not Lab.objects.filter(name="shared").exists()


def test_a_host_path_is_refused_to_a_plain_user(api: Api, alice: User) -> None:
    text = SHARED + "  spy:\n    mounts:\n      - {host: /etc, path: /host-etc}\n"
    answer = api(alice).post("/api/labs/import", text, content_type="application/yaml")

    assert answer.status_code in (400, 403)
    assert "nodes.spy.mounts.0.host" in answer.json()["errors"]
    assert not Lab.objects.filter(name="shared").exists()
