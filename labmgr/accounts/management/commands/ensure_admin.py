"""`manage.py ensure_admin`: make sure the superuser `admin` exists (idempotent).

On first run it gets a generated password, kept in `<data>/admin-password` (0600) and
printed once; later runs only say where the password is.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

USERNAME = "admin"


class Command(BaseCommand):
    help = "Create the superuser 'admin' with a generated password if it does not exist."

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.LABMGR_DATA_DIR) / "admin-password"
        password = secrets.token_urlsafe(18)
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(
                username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
                _write_secret(path, password)
        if created:
            self.stdout.write(f"admin login: {USERNAME} / {password}")
        elif path.exists():
            self.stdout.write(f"admin login: {USERNAME} (password in {path})")
        else:
            self.stdout.write(
                f"admin login: {USERNAME} (password set earlier; "
                f"change it with: manage.py changepassword {USERNAME})"
            )


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # The mode of open() only applies to a new file; an old one may have been wider.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
