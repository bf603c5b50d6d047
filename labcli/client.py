"""The REST API over HTTP, with the stored or environment credentials."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


class CliError(Exception):
    """A failure to report as a sentence, with the exit status it calls for."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def config_path() -> Path:
    """Where the credentials are kept: $LABMGR_CONFIG, else ~/.config/labmgr/."""
    override = os.environ.get("LABMGR_CONFIG")
    if override:
        return Path(override)
    return Path.home() / ".config" / "labmgr" / "credentials.json"


def save_credentials(server: str, token: str, user: str | None = None) -> Path:
    """Write the server, token and user name, readable by the user alone."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"server": server, "token": token, "user": user}, file)
    os.chmod(path, 0o600)
    return path


def _stored() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CliError(f"{path} cannot be read: {error}; run `labmgr login`.", 2) from None
    return stored if isinstance(stored, dict) else {}


def load_user() -> str | None:
    """Whose token it is: $LABMGR_USER, else the name stored at login (None when unknown,
    as for a token given in $LABMGR_TOKEN alone)."""
    if os.environ.get("LABMGR_TOKEN"):
        return os.environ.get("LABMGR_USER") or None
    user = os.environ.get("LABMGR_USER") or _stored().get("user")
    return str(user) if user else None


def load_credentials() -> tuple[str, str]:
    """The server and token: the environment's, else the stored ones."""
    stored = _stored()
    server = os.environ.get("LABMGR_SERVER") or stored.get("server")
    token = os.environ.get("LABMGR_TOKEN") or stored.get("token")
    if not server or not token:
        raise CliError("Not logged in: run `labmgr login --server URL`.", 2)
    return str(server), str(token)


def error_sentence(response: requests.Response) -> str:
    """The server's own words for a refusal, each field error named."""
    try:
        body = response.json()
    except ValueError:
        return f"The server answered {response.status_code} {response.reason}."
    if not isinstance(body, dict):
        return f"The server answered {response.status_code}: {body}"
    lines = []
    detail = body.get("detail")
    if detail:
        lines.append(str(detail))
    errors = body.get("errors")
    if isinstance(errors, dict):
        for field, messages in errors.items():
            for message in messages if isinstance(messages, list) else [messages]:
                if message != detail:
                    lines.append(f"{field}: {message}" if field else str(message))
    if not lines:
        for field, messages in body.items():
            for message in messages if isinstance(messages, list) else [messages]:
                lines.append(f"{field}: {message}")
    return "\n".join(lines) or f"The server answered {response.status_code}."


@dataclass
class Client:
    """Requests to one server's /api/, with a token unless logging in."""

    server: str
    token: str | None = None
    timeout: float = 30.0

    def url(self, path: str) -> str:
        return f"{self.server.rstrip('/')}/api/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The answer to a request; a CliError if refused or the server is unreachable."""
        headers = dict(kwargs.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        try:
            response = requests.request(
                method, self.url(path), headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException:
            raise CliError(f"cannot reach {self.server}", 2) from None
        if response.status_code >= 400:
            raise CliError(error_sentence(response), 1)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        response = self.request("POST", path, **kwargs)
        return response.json() if response.content else None

    def pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paginated list."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.get(path, params={"page": page})
            items.extend(body.get("results", []))
            if not body.get("next"):
                return items
            page += 1
