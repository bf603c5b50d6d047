from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from labmgr.labs.models import Lab


def test_it_refuses_two_labs_of_one_owner_with_the_same_name(alice: User) -> None:
    Lab.objects.create(owner=alice, name="demo")
    with pytest.raises(IntegrityError), transaction.atomic():
        Lab.objects.create(owner=alice, name="demo")


def test_two_owners_may_use_the_same_lab_name(alice: User, charlie: User) -> None:
    Lab.objects.create(owner=alice, name="demo")
    Lab.objects.create(owner=charlie, name="demo")
    assert Lab.objects.filter(name="demo").count() == 2


def test_rows_read_as_lab_and_name(alice_lab: Lab) -> None:
    assert str(alice_lab) == "demo (alice)"
    assert str(alice_lab.networks.get()) == "demo/lan"
    web = alice_lab.nodes.get(name="web")
    assert str(web) == "demo/web"
    assert str(web.attachments.get()) == "demo/web @ lan"
