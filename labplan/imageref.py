"""Image references as Docker reads them: `alpine`, `frrouting/frr:v8.4.1`,
`registry.example:5000/team/router@sha256:...`, parsed into a registry, a repository, a
tag and a digest, and normalized to one canonical text per image name.

The grammar is distribution/reference's. The first component names a registry when it
holds a "." or a ":", is "localhost", or has an uppercase letter; otherwise the reference
is Docker Hub's (`docker.io`, and `library/` before a one-component repository). A
reference with neither tag nor digest means the tag `latest`. See docs/images.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
NAME_MAX = 255  # characters of registry/repository, as Docker bounds it

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = re.compile(r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])")
_DOMAIN = re.compile(
    rf"{_DOMAIN_COMPONENT.pattern}(?:\.{_DOMAIN_COMPONENT.pattern})*(?::[0-9]{{1,5}})?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
SHOWN_MAX = 80  # characters of a bad reference repeated in its error


@dataclass(frozen=True)
class ImageRef:
    """One parsed reference; `parse` makes them, already normalized."""

    registry: str  # "docker.io", "127.0.0.1:5000", "localhost"
    repository: str  # "library/alpine", "frrouting/frr"
    tag: str | None
    digest: str | None  # "sha256:<64 hex>"

    @property
    def name(self) -> str:
        """registry/repository: "docker.io/library/alpine"."""
        return f"{self.registry}/{self.repository}"

    @property
    def canonical(self) -> str:
        """The whole reference: name, ":tag" if any, "@digest" if any."""
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def pinned(self, digest: str) -> ImageRef:
        """This reference fixed to `digest` (its tag kept, for people to read)."""
        if not DIGEST_RE.fullmatch(digest):
            raise ValueError(f"{digest!r} is not a digest: use sha256: and 64 hex digits")
        return replace(self, digest=digest)

    def __str__(self) -> str:
        return self.canonical


def _invalid(text: str, why: str) -> ValueError:
    shown = text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + "..."
    return ValueError(f"{shown!r} is not a valid image reference: {why}")


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    is_registry = bool(slash) and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    if not is_registry:
        return DOCKER_HUB, name
    return first, rest


def parse(text: str) -> ImageRef:
    """The normalized reference `text` names; ValueError saying what is wrong if none."""
    if not isinstance(text, str):
        raise ValueError("an image reference must be text")
    if text == "":
        raise _invalid(text, "it is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise _invalid(text, "it contains spaces")
    if not text.isascii() or not text.isprintable():
        raise _invalid(text, "only letters a-z, digits and . _ - / : @ may appear")
    remainder, at, digest = text.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise _invalid(text, "the digest must be sha256: followed by 64 lowercase hex digits")
    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise _invalid(
                text,
                "the tag must be 1 to 128 letters, digits, _ . or -, not starting with . or -",
            )
    if name == "":
        raise _invalid(text, "it names no repository")
    registry, repository = _split_registry(name)
    if not _DOMAIN.fullmatch(registry):
        raise _invalid(text, f"{registry!r} is not a registry host name (host or host:port)")
    if registry in DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    components = repository.split("/")
    for component in components:
        if component == "":
            raise _invalid(text, "the repository has an empty component (a stray '/')")
        if not _COMPONENT.fullmatch(component):
            if component.lower() != component:
                raise _invalid(text, "the repository name must be lowercase")
            raise _invalid(
                text,
                f"{component!r} is not a repository component: use a-z and 0-9, "
                "joined by . _ __ or -",
            )
    if registry == DOCKER_HUB and len(components) == 1:
        repository = f"{OFFICIAL_NAMESPACE}/{repository}"
    if len(name) > NAME_MAX or len(f"{registry}/{repository}") > NAME_MAX:
        raise _invalid(text, f"the name is longer than {NAME_MAX} characters")
    if tag is None and not at:
        tag = DEFAULT_TAG
    return ImageRef(registry, repository, tag, digest if at else None)


def canonical(text: str) -> str:
    """`parse(text).canonical`: the one text every spelling of a reference comes to."""
    return parse(text).canonical
