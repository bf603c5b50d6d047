"""Who a websocket is: the session's user (a browser), or, for a client that says
`Authorization: Token <key>` (the `labmgr` command's shell), that token's user by the same
check as the REST API's. A browser cannot set that header on a websocket, so a page of
another site cannot borrow a token this way."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed

from labmgr.accounts.authentication import ExpiringTokenAuthentication


def token_user(header: bytes) -> Any:
    """The user of an `Authorization: Token <key>` header; nobody for any other, an
    unknown or an expired token, or an inactive user."""
    scheme, _, key = header.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "token" or not key.strip():
        return AnonymousUser()
    try:
        user, _ = ExpiringTokenAuthentication().authenticate_credentials(key.strip())
    except AuthenticationFailed:
        return AnonymousUser()
    return user


class TokenAuthMiddleware(BaseMiddleware):
    """Inside AuthMiddlewareStack: a token, when given, decides the user."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        header = dict(scope.get("headers") or ()).get(b"authorization")
        if header is not None:
            scope = dict(scope, user=await database_sync_to_async(token_user)(header))
        return await super().__call__(scope, receive, send)
