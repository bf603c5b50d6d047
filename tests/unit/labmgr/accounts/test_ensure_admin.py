from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management import call_command


def _run() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue().strip()


def test_it_creates_the_admin_once_and_then_points_at_the_password(
    db: None, settings: Any, tmp_path: Path
) -> None:
    settings.LABMGR_DATA_DIR = tmp_path
    first = _run()
    assert first.startswith("admin login: admin / ")
    password = first.removeprefix("admin login: admin / ")
    path = tmp_path / "admin-password"
    assert path.read_text().strip() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)

    assert _run() == f"admin login: admin (password in {path})"
    assert User.objects.filter(username="admin").count() == 1
    assert User.objects.get(username="admin").check_password(password)


def test_it_leaves_an_existing_admin_alone(db: None, settings: Any, tmp_path: Path) -> None:
    settings.LABMGR_DATA_DIR = tmp_path
    User.objects.create_superuser("admin", "", "chosen-by-hand")
    assert _run() == (
        "admin login: admin (password set earlier; change it with: manage.py changepassword admin)"
    )
    assert not (tmp_path / "admin-password").exists()
    assert User.objects.get(username="admin").check_password("chosen-by-hand")
