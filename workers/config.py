"""The agent's settings, read from the environment with safe defaults."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = "/var/lib/labmgr-agent"


def data_dir() -> Path:
    """Where the agent keeps its journal, node files, logs and the built init."""
    return Path(os.environ.get("LABMGR_AGENT_DATA_DIR") or DEFAULT_DATA_DIR)


def host_name() -> str:
    """The name plans use for this host."""
    return os.environ.get("LABMGR_AGENT_HOST") or "local"
