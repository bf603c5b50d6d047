"""Account signals with consequences elsewhere: logging out closes the user's terminals."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from labmgr import events


@receiver(user_logged_out, dispatch_uid="labmgr.accounts.close_terminals_on_logout")
def close_terminals_on_logout(sender: Any, request: Any, user: User | None, **kwargs: Any) -> None:
    if user is not None and user.pk is not None:
        events.publish([events.user_group(user.pk)], {"type": "session.ended", "user": user.pk})
