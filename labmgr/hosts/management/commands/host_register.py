"""`manage.py host_register SLUG`: register a host (idempotent) and give its agent's key.

The key is printed with the command that installs it on the host, or with `--key-file`
written where a local agent reads it (`make run` does that for the host it starts).
`--rotate` gives a registered host a new key: sent to its running agent, wrapped under
the old one, and used once the agent confirms it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug

from labmgr.hosts import trust


class Command(BaseCommand):
    help = "Register a host (or rotate its key) and give the key its agent signs with."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the host's name on the queues (host.<slug>)")
        parser.add_argument("--name", help="a display name (default: the slug)")
        parser.add_argument(
            "--key-file",
            type=Path,
            help="write the key there (0600) instead of printing it, e.g. for a local agent",
        )
        parser.add_argument(
            "--rotate", action="store_true", help="give the host a new key (its agent must run)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        try:
            validate_slug(slug)
        except ValidationError as exc:
            raise CommandError(f"{slug!r} is not a host slug (letters, digits, - and _)") from exc
        host = trust.host_register(slug=slug, name=options["name"])
        if options["rotate"]:
            trust.host_key_rotate(host=host)
            self.stdout.write(
                f"host {slug}: a new key is on its way to its agent; it is used once the "
                "agent confirms (the host's page shows the rotation pending until then)"
            )
            return
        if options["key_file"] is not None:
            _write_key(options["key_file"], host.key)
            self.stdout.write(f"host {slug}: key in {options['key_file']}")
            return
        self.stdout.write(f"host {slug} is registered. On it, as root, install its key:")
        self.stdout.write(f"  {trust.install_command(host)}")


def _write_key(path: Path, key: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(key + "\n")
