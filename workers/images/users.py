"""The user a node's command runs as, as Docker reads `User`: "name", "uid", "uid:gid",
"name:group", looked up in the node's own tree (its /etc/passwd and /etc/group), never
following a symbolic link out of it; numeric ids need no file. Ids are those of the
node's user namespace, so they must fall inside the range it maps."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from workers.images.store import ImageError

NAME_MAX = 32


def read_in_tree(root: Path, relative: str) -> str | None:
    """The text of `relative` under `root`, walked one component at a time without
    following any symbolic link (so a link cannot lead outside the tree); None when it is
    missing or a link."""
    parts = [p for p in relative.split("/") if p]
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], flags, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return None
        raise
    finally:
        os.close(fd)
    with os.fdopen(leaf, "rb") as file:
        return file.read(1 << 22).decode("utf-8", "replace")


def _table(root: Path, relative: str) -> list[list[str]]:
    text = read_in_tree(root, relative) or ""
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 10 else None


def _in_range(spec: str, uid: int, gid: int, ids: int | None) -> tuple[int, int]:
    for what, value in (("uid", uid), ("gid", gid)):
        if ids is not None and value >= ids:
            raise ImageError(
                f"user {spec}", f"{what} {value} is outside the node's {ids} ids (0-{ids - 1})"
            )
    return uid, gid


def resolve_user(root: Path, spec: str | None, ids: int | None = None) -> tuple[int, int]:
    """The numeric (uid, gid) `spec` names in the tree at `root` ("" or None: root), each
    below `ids` when the node's user namespace maps only that many."""
    if not spec:
        return 0, 0
    user, _, group = spec.partition(":")
    uid = _number(user)
    gid: int | None = None
    if uid is None:
        entry = next((e for e in _table(root, "etc/passwd") if e[0] == user and len(e) > 3), None)
        if entry is None or _number(entry[2]) is None:
            raise ImageError(f"user {spec}", f"no user {user!r} in the node's /etc/passwd")
        uid, gid = _number(entry[2]), _number(entry[3])
    elif not group:
        # A number alone takes the primary group its passwd line gives, else gid 0 (Docker).
        entry = next((e for e in _table(root, "etc/passwd") if len(e) > 3 and e[2] == user), None)
        gid = _number(entry[3]) if entry else 0
    if group:
        gid = _number(group)
        if gid is None:
            entry = next((e for e in _table(root, "etc/group") if e[0] == group), None)
            if entry is None or len(entry) < 3 or _number(entry[2]) is None:
                raise ImageError(f"user {spec}", f"no group {group!r} in the node's /etc/group")
            gid = _number(entry[2])
    assert uid is not None
    return _in_range(spec, uid, gid or 0, ids)
