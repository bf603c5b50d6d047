"""The signed-in user of a request: the annotation for a view behind `login_required`
(its user is a `User`, never the anonymous one) and the accessor the views that require
authentication use to hand that user to services."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated


class AuthenticatedHttpRequest(HttpRequest):
    """For annotations only: Django passes its own request class, whose `user` the
    `login_required` decorator has checked before the view runs."""

    user: User


def acting_user(request: HttpRequest) -> User:
    """The request's user, for a view that already requires authentication (an API view
    with `IsAuthenticated`, an admin page): the anonymous user never gets this far, so
    the refusal here is the 401 that permission class would have answered."""
    user = request.user
    if not user.is_authenticated:
        raise NotAuthenticated
    return user
