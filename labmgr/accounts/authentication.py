"""Token authentication with an expiry: DRF's tokens never expire by themselves."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from labmgr.accounts.tokens import show_time, token_expired, token_expires


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, refused with 401 once the token is older than
    LABMGR_API_TOKEN_TTL, saying when it expired and how to get a fresh one."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            expires = token_expires(token)
            assert expires is not None
            raise AuthenticationFailed(
                f"The token expired on {show_time(expires)}. Get a fresh one with "
                "POST /api/token (user name and password), or ask an admin."
            )
        return user, token
