"""The type of a request that only a logged-in user reaches (a view behind
`login_required`): its user is a `User`, never the anonymous one."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """For annotations only: Django passes its own request class, whose `user` the
    `login_required` decorator has checked before the view runs."""

    user: User
