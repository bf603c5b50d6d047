"""API tokens: each user's one token (DRF's authtoken), how long it lives, issuing a
fresh one and revoking it. Admins revoke anyone's in the admin (Auth Token > Tokens)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token


def token_lifetime() -> timedelta | None:
    """How long a token is valid after it was made; None: for ever."""
    seconds = float(settings.LABMGR_API_TOKEN_TTL)
    return timedelta(seconds=seconds) if seconds > 0 else None


def token_expires(token: Token) -> datetime | None:
    lifetime = token_lifetime()
    return None if lifetime is None else token.created + lifetime


def token_expired(token: Token) -> bool:
    expires = token_expires(token)
    return expires is not None and expires <= timezone.now()


def token_issue(*, user: User) -> Token:
    """A fresh token for `user`; the one they had stops working."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def token_revoke(*, user: User) -> bool:
    """Delete the user's token; False when they had none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0


def show_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
