"""What every importer and exporter returns: the result and its notes."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labplan.bounds import MAX_VOLUME_SIZE
from labplan.errors import FieldError
from labplan.mountpaths import path_problem, target_problem

NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
MIN_VOLUME_SIZE = 1 << 20  # the labfile's least volume size


def labfile_name(value: str, pattern: re.Pattern[str] = NAME) -> str:
    """`value` spelled as a labfile name: lower case, `_` `.` and spaces as `-`, a
    leading letter, cut to the pattern's length."""
    name = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"n-{name}".rstrip("-")
    limit = 31 if pattern is NAME else 40
    return name[:limit].rstrip("-") or "n"


@dataclass(frozen=True)
class Note:
    """One thing an import or export changed or dropped: `path` names the field of the
    file it is about (the source's on import, the labfile's on export)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class Imported:
    tree: dict[str, Any]  # a labfile tree, for labplan.labfile.validate
    notes: tuple[Note, ...]
    source: str  # the format it came from, one of FORMATS
    # labfile path -> the source file's path it came from (`nodes.r1` -> `services.r1`)
    origins: Mapping[str, str] = field(default_factory=dict)

    def in_file_terms(self, errors: Iterable[FieldError]) -> list[FieldError]:
        """The labfile's refusals of the converted tree (an admin's field, a bound passed)
        named by the file's own paths: a field the file wrote as such takes its path, any
        other the path of the node or network it belongs to, the labfile field said."""
        said: list[FieldError] = []
        for error in errors:
            if error.path in self.origins:
                said.append(FieldError(self.origins[error.path], error.message))
                continue
            parts = error.path.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                prefix = ".".join(parts[:cut])
                if prefix in self.origins:
                    rest = ".".join(parts[cut:])
                    said.append(FieldError(self.origins[prefix], f"{rest}: {error.message}"))
                    break
            else:
                said.append(error)
        return said


@dataclass(frozen=True)
class Exported:
    text: str
    notes: tuple[Note, ...]


class Importer:
    """What every importer keeps while it walks a file: its refusals (all reported at
    once) and notes, each under the source file's own path, and the volumes it makes
    (one per source the file names), with each node's mounts checked as the labfile
    checks them but refused under the file's own paths."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.notes: list[Note] = []
        self.volumes: dict[str, dict[str, Any]] = {}  # the lab's, labfile name -> volume
        self.volume_keys: dict[tuple[str, ...], str] = {}  # what the file names -> labfile name
        self.origins: dict[str, str] = {}  # labfile path -> the file's path (Imported's)
        self._mount_origins: dict[int, str] = {}  # id of a mount entry -> the file's path
        self._said: set[tuple[str, str]] = set()

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path.lstrip("."), message))

    def note(self, path: str, message: str) -> None:
        self.notes.append(Note(path, message))

    def mapping(self, value: object, path: str, what: str) -> Mapping[str, Any]:
        """`value` as a mapping (None is an empty one); refused under `path` if not."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"{what} must be a mapping of keys")
            return {}
        return value

    def sysctls(self, value: object, path: str) -> dict[str, str]:
        """A node's sysctls, a mapping or a list of KEY=VALUE as both tools write them:
        the net.* ones (its own network namespace's) kept, the others noted."""
        pairs: list[tuple[str, object]] = []
        if isinstance(value, Mapping):
            pairs = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            pairs = [(k, v) for k, _, v in (item.partition("=") for item in value)]
        else:
            self.error(path, "sysctls is a mapping or a list of KEY=VALUE")
            return {}
        kept: dict[str, str] = {}
        for key, setting in pairs:
            if not key.startswith("net."):
                self.note(f"{path}.{key}", "not carried over: only net.* sysctls are a node's own")
            elif isinstance(setting, bool) or not isinstance(setting, str | int | float):
                self.error(f"{path}.{key}", f"{setting!r} is not a sysctl value")
            else:
                kept[key] = str(setting)
        return kept

    def note_once(self, path: str, message: str) -> None:
        """A note that an inherited field (a containerlab kind's binds) gives every node
        that inherits it, said once."""
        if (path, message) not in self._said:
            self._said.add((path, message))
            self.note(path, message)

    def error_once(self, path: str, message: str) -> None:
        if not any(e.path == path.lstrip(".") and e.message == message for e in self.errors):
            self.error(path, message)

    def volume(self, key: tuple[str, ...], base: str, spec: dict[str, Any] | None = None) -> str:
        """The labfile volume for `key` (one per key), named `base` spelled as a labfile
        name, with a number added when another key took that name."""
        if key in self.volume_keys:
            return self.volume_keys[key]
        stem = labfile_name(base)
        name, number = stem, 1
        while name in self.volumes:
            number += 1
            suffix = f"-{number}"
            name = f"{stem[: 31 - len(suffix)].rstrip('-')}{suffix}"
        self.volumes[name] = dict(spec or {})
        self.volume_keys[key] = name
        return name

    def target(self, raw: object, path: str, node: dict[str, Any]) -> str | None:
        """Where a mount goes in the node: absolute, written plainly (changed with a note
        when it is not, as the other tools clean it), on a path the labfile lets a mount
        take and no other mount of the node takes; refused under `path` otherwise."""
        if not isinstance(raw, str) or not raw.startswith("/"):
            self.error_once(path, f"{raw!r} is not an absolute path inside the node")
            return None
        target = self.plain(raw, path)
        if target is None:
            return None
        if (problem := target_problem(target)) is not None:
            self.error_once(path, problem)
            return None
        if any(m["path"] == target for m in node.get("mounts", ())):
            self.error_once(path, f"another mount of the node is already on {target}")
            return None
        return target

    def plain(self, raw: str, path: str) -> str | None:
        """An absolute path (of the host or the node) written plainly, noted when it was
        not; refused under `path` when a mount cannot take it."""
        cleaned = clean_path(raw)
        if (problem := path_problem(cleaned)) is not None:
            self.error_once(path, problem)
            return None
        if cleaned != raw:
            self.note_once(path, f"{raw} is written {cleaned}")
        return cleaned

    def volume_size(self, size: int, path: str) -> int | None:
        """A volume's size from the file: raised to the labfile's least (noted), refused
        past its most."""
        if size > MAX_VOLUME_SIZE:
            self.error(path, f"{size} bytes: a volume of a lab is at most 4G (a tmpfs)")
            return None
        if size < MIN_VOLUME_SIZE:
            self.note(path, f"{size} bytes is written 1M, the least a volume of a lab takes")
            return MIN_VOLUME_SIZE
        return size

    def mount(
        self,
        node: dict[str, Any],
        target: str,
        *,
        volume: str | None = None,
        host: str | None = None,
        readonly: bool = False,
        origin: str,
    ) -> None:
        """Mount a volume or host path in `node`, written at the file's path `origin`."""
        entry: dict[str, Any] = {"volume": volume} if volume is not None else {"host": host}
        entry["path"] = target
        if readonly:
            entry["readonly"] = True
        self.add_entry(node, entry, origin)

    def add_entry(self, node: dict[str, Any], entry: dict[str, Any], origin: str) -> None:
        node.setdefault("mounts", []).append(entry)
        self._mount_origins[id(entry)] = origin

    def node_origins(self, label: str, path: str, node: Mapping[str, Any]) -> None:
        """Where the labfile's node `label` and each of its mounts came from in the file
        (every field of a mount is in the one entry the file wrote)."""
        self.origins[f"nodes.{label}"] = path
        for index, entry in enumerate(node.get("mounts", ())):
            if (origin := self._mount_origins.get(id(entry))) is not None:
                at = f"nodes.{label}.mounts.{index}"
                self.origins[at] = origin
                for key in ("host", "volume", "path", "readonly"):
                    self.origins[f"{at}.{key}"] = origin


def clean_path(path: str) -> str:
    """An absolute path as Docker and containerlab mount it: `.` and `..` parts resolved,
    doubled and trailing `/` dropped."""
    return "/" + posixpath.normpath(path).lstrip("/")


_SIZE_SUFFIXES = (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10))


def tmpfs_size(value: str) -> int:
    """Bytes of a tmpfs `size=` option as the kernel reads it (`64m`, `1g`, `65536k`,
    a number of bytes); ValueError for what is not one (`50%` among them)."""
    match = re.fullmatch(r"(\d+)([kmgt]?)", value.strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not a size like 64m")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[match.group(2)]
    return int(match.group(1)) * factor


def format_tmpfs_size(value: int) -> str:
    """`tmpfs_size`'s inverse: 67108864 -> `64m`."""
    for suffix, factor in _SIZE_SUFFIXES:
        if value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)
