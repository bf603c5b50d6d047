"""Reads about users: which role a user holds."""

from __future__ import annotations

from typing import Any


def user_is_admin(*, user: Any) -> bool:
    """Admins (staff or superusers) see every lab and may use admin-only labfile fields."""
    return bool(user.is_active and (user.is_staff or user.is_superuser))
