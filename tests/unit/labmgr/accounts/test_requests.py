"""The signed-in user a view hands to services: the user, or a 401 for the anonymous."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.test import RequestFactory
from rest_framework.exceptions import NotAuthenticated

from labmgr.accounts.requests import acting_user


def test_it_gives_the_signed_in_user(alice: User) -> None:
    request = RequestFactory().get("/")
    request.user = alice
    assert acting_user(request) == alice


def test_it_refuses_the_anonymous_with_401() -> None:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    with pytest.raises(NotAuthenticated) as refused:
        acting_user(request)
    assert refused.value.status_code == 401
