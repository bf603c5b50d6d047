"""Image references read as Docker reads them (distribution/reference's grammar): every
spelling of an image comes to one canonical text, and a bad one is refused saying why."""

from __future__ import annotations

import pytest

from labplan import imageref
from labplan.imageref import ImageRef, parse

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.20", "docker.io/library/alpine:3.20"),
        ("library/alpine", "docker.io/library/alpine:latest"),
        ("docker.io/alpine", "docker.io/library/alpine:latest"),
        ("index.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20"),
        ("registry-1.docker.io/frrouting/frr", "docker.io/frrouting/frr:latest"),
        ("frrouting/frr:v8.4.1", "docker.io/frrouting/frr:v8.4.1"),
        ("localhost/team/x", "localhost/team/x:latest"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
        ("Registry.Example/x", "Registry.Example/x:latest"),
        ("registry.example:5000/team/router", "registry.example:5000/team/router:latest"),
        # A first component without ".", ":" or uppercase, and not localhost, is Hub's.
        ("team/router", "docker.io/team/router:latest"),
        # With no "/", a colon starts the tag, whatever it looks like.
        ("host:5000", "docker.io/library/host:5000"),
        ("team/a.b_c__d-e--f", "docker.io/team/a.b_c__d-e--f:latest"),
        ("x:_Tag.1-2", "docker.io/library/x:_Tag.1-2"),
    ],
)
def test_every_spelling_comes_to_its_canonical_reference(text: str, canonical: str) -> None:
    assert parse(text).canonical == canonical
    assert imageref.canonical(text) == canonical
    assert parse(canonical).canonical == canonical  # canonical text is a fixed point


def test_a_reference_is_cut_into_registry_repository_tag_and_digest() -> None:
    ref = parse(f"registry.example:5000/team/router:v1@{DIGEST}")

    assert ref == ImageRef("registry.example:5000", "team/router", "v1", DIGEST)
    assert ref.name == "registry.example:5000/team/router"
    assert str(ref) == f"registry.example:5000/team/router:v1@{DIGEST}"


def test_a_digest_alone_means_no_tag_and_a_tag_and_a_digest_are_both_kept() -> None:
    assert parse(f"alpine@{DIGEST}").canonical == f"docker.io/library/alpine@{DIGEST}"
    assert parse(f"alpine@{DIGEST}").tag is None
    assert parse(f"alpine:3.20@{DIGEST}").canonical == f"docker.io/library/alpine:3.20@{DIGEST}"


def test_pinning_keeps_the_tag_for_people_to_read() -> None:
    assert (
        parse("alpine:3.20").pinned(DIGEST).canonical == f"docker.io/library/alpine:3.20@{DIGEST}"
    )
    with pytest.raises(ValueError, match="is not a digest"):
        parse("alpine").pinned("sha256:12")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it is empty"),
        ("alpine 3", "it contains spaces"),
        (" alpine", "it contains spaces"),
        ("alpine\t", "it contains spaces"),
        ("alpiné", "only letters a-z, digits"),
        ("a@sha256:xyz", "the digest must be sha256: followed by 64 lowercase hex digits"),
        ("a@md5:" + "0" * 32, "the digest must be sha256:"),
        (f"a@{DIGEST.upper()}", "the digest must be sha256:"),
        ("x:" + "t" * 129, "the tag must be 1 to 128"),
        ("x:.hidden", "the tag must be 1 to 128"),
        ("x:-dash", "the tag must be 1 to 128"),
        ("x:", "the tag must be 1 to 128"),
        (":tag", "it names no repository"),
        ("team/UPPER", "the repository name must be lowercase"),
        ("a//b", "a stray '/'"),
        ("reg.example:5000/", "a stray '/'"),
        ("a___b", "'a___b' is not a repository component"),
        ("-a", "'-a' is not a repository component"),
        ("a-", "'a-' is not a repository component"),
        ("bad_host.example/x", "'bad_host.example' is not a registry host name"),
        ("reg.example:port/x", "is not a registry host name"),
        ("team/" + "a" * 250, "longer than 255 characters"),
    ],
)
def test_a_bad_reference_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse(text)

    message = str(refused.value)
    assert " is not a valid image reference: " in message
    assert why in message


def test_a_long_bad_reference_is_shown_cut_short() -> None:
    with pytest.raises(ValueError) as refused:
        parse("UPPER/" + "x" * 300 + " ")

    assert len(str(refused.value)) < 200
    assert "...' is not a valid image reference" in str(refused.value)


def test_only_text_is_a_reference() -> None:
    with pytest.raises(ValueError, match="must be text"):
        parse(5)  # type: ignore[arg-type]
