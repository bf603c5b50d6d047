"""The deployment settings: with LABMGR_TLS=1 `manage.py check --deploy` finds nothing,
plain http is redirected, cookies are Secure and HSTS is on; without it the embedded
default serves plain http. Cookies are HttpOnly (but the CSRF token, which the pages'
scripts send back) and SameSite=Lax either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

REPO = Path(__file__).resolve().parents[3]
YEAR = 365 * 86400

# Runs in a fresh interpreter, where the settings are read from its environment.
PROBE = """
import json, django
django.setup()
from django.test import Client
out = {}
for name, extra in (("plain", {}), ("proxied", {"HTTP_X_FORWARDED_PROTO": "https"})):
    response = Client(HTTP_HOST="localhost").get("/login/", **extra)
    cookie = response.cookies.get("csrftoken")
    out[name] = {
        "status": response.status_code,
        "location": response.get("Location"),
        "hsts": response.get("Strict-Transport-Security"),
        "nosniff": response.get("X-Content-Type-Options"),
        "csrf_secure": bool(cookie and cookie["secure"]),
        "csrf_samesite": cookie["samesite"] if cookie else None,
    }
from django.conf import settings
out["session_secure"] = settings.SESSION_COOKIE_SECURE
print(json.dumps(out))
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="labmgr-deploy-") as path:
        yield Path(path)


def environment(data: Path, **values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LABMGR_", "DJANGO_")) and key != "DATABASE_URL"
    }
    return {**env, "LABMGR_DATA_DIR": str(data), **values}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_tls(data_dir: Path) -> None:
    result = run(
        [sys.executable, "manage.py", "check", "--deploy"],
        environment(data_dir, LABMGR_TLS="1"),
    )
    assert result.returncode == 0, result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_without_tls(data_dir: Path) -> None:
    # The check the test above relies on does find what TLS settings change.
    result = run([sys.executable, "manage.py", "check", "--deploy"], environment(data_dir))
    assert "security.W004" in result.stderr  # no HSTS
    assert "security.W012" in result.stderr  # session cookie not Secure


def probe(data: Path, **values: str) -> dict[str, Any]:
    env = environment(data, DJANGO_SETTINGS_MODULE="labmgr.settings", **values)
    result = run([sys.executable, "-c", PROBE], env)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_with_tls_plain_http_is_redirected_and_https_gets_hsts_and_secure_cookies(
    data_dir: Path,
) -> None:
    seen = probe(data_dir, LABMGR_TLS="1", LABMGR_PROXY_SSL_HEADER="X-Forwarded-Proto: https")
    assert seen["plain"]["status"] == 301
    assert seen["plain"]["location"] == "https://localhost/login/"
    proxied = seen["proxied"]
    assert proxied["status"] == 200
    assert proxied["hsts"] == f"max-age={YEAR}; includeSubDomains"
    assert proxied["nosniff"] == "nosniff"
    assert proxied["csrf_secure"] is True
    assert proxied["csrf_samesite"] == "Lax"
    assert seen["session_secure"] is True


def test_without_tls_the_embedded_default_serves_plain_http(data_dir: Path) -> None:
    seen = probe(data_dir)
    plain = seen["plain"]
    assert plain["status"] == 200
    assert plain["hsts"] is None
    assert plain["csrf_secure"] is False
    assert plain["csrf_samesite"] == "Lax"
    assert seen["session_secure"] is False
    # Without LABMGR_PROXY_SSL_HEADER a client's X-Forwarded-Proto is not believed.
    assert seen["proxied"]["hsts"] is None


def test_the_session_cookie_is_httponly_and_same_site(client: Client, alice: User) -> None:
    response = client.post("/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    page = client.get("/")
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["X-Frame-Options"] == "DENY"
    assert page["Referrer-Policy"] == "same-origin"
