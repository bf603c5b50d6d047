"""The image jobs sent to a host's agent (docs/messages.md, Images); tests patch this seam.
Each is answered later by an images report (`labmgr.control.images`), not waited for."""

from __future__ import annotations

from labmgr.hosts import trust
from labplan.messages import (
    AgentTask,
    ImageLoadArgs,
    ImagePruneArgs,
    ImagePullArgs,
    ImageRemoveArgs,
)


def image_pull(*, host: str, ref: str, registries: str) -> None:
    args: ImagePullArgs = {"ref": ref, "registries": registries}
    trust.send(AgentTask.IMAGE_PULL, host, args)


def image_remove(*, host: str, refs: list[str]) -> None:
    args: ImageRemoveArgs = {"refs": refs}
    trust.send(AgentTask.IMAGE_REMOVE, host, args)


def image_prune(*, host: str, all: bool) -> None:
    args: ImagePruneArgs = {"all": all}
    trust.send(AgentTask.IMAGE_PRUNE, host, args)


def image_load(*, host: str, upload: str, chunks: int, sha256: str, name: str | None) -> None:
    args: ImageLoadArgs = {"upload": upload, "chunks": chunks, "sha256": sha256, "name": name}
    trust.send(AgentTask.IMAGE_LOAD, host, args)
