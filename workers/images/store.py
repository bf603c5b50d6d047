"""The host's image store: OCI images pulled with skopeo, unpacked once with umoci, and
shared read-only by every node that runs them.

On disk, under `<data dir>/images` (root's alone, 0700):

    layout/           one OCI image layout; every image's blobs, shared between images,
                      its manifest tagged with the image's digest (hex)
    trees/<hex>/      rootfs/ (the unpacked tree nodes start from) and image.json (its
                      references, config, size, last use)
    refs.json         reference -> digest: what `alpine:3.20` names on this host
    tmp/              work in progress; what a failed pull or load leaves is removed

An image is known by the digest of its manifest as its registry serves it (what `ref@digest`
pulls again); a loaded archive's by the manifest the layout holds. skopeo verifies every
blob it copies against its digest, and umoci again as it unpacks: a layer that does not
match is refused and nothing of it is kept. A tree appears whole (renamed into trees/) or
not at all. Every change holds `lock`, so two pulls of one image unpack it once.

Registries are reached as containers-registries.conf(5) says, from a file the store writes:
`LABMGR_REGISTRY_MIRRORS` (`docker.io=127.0.0.1:5000,quay.io=mirror:5000`) sends a
registry's pulls to its mirror first, as Docker's registry-mirrors do;
`LABMGR_INSECURE_REGISTRIES` (`host:port,...`) are reached over plain HTTP (a mirror on
loopback is too). Logins come per pull (workers.images.transfer.open_logins) and live in a
private auth file for the pull's duration only. See docs/images.md.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labplan import imageref
from labplan.messages import ImageFact, RegistryLogin
from labplan.units import UnitError, parse_size

MIRRORS_VARIABLE = "LABMGR_REGISTRY_MIRRORS"
INSECURE_VARIABLE = "LABMGR_INSECURE_REGISTRIES"
CACHE_MAX_VARIABLE = "LABMGR_IMAGE_CACHE_MAX"
PULL_SECONDS = 1800  # one pull or load, at most
INSPECT_SECONDS = 120
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}
REF_ANNOTATION = "org.opencontainers.image.ref.name"
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ERROR_MAX = 300  # characters of a tool's error kept in the one-line reason


class ImageError(Exception):
    """An image that cannot be had or changed; the message names it and says why."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref, self.reason = ref, reason
        super().__init__(f"image {ref}: {reason}")


@dataclass(frozen=True)
class ImageConfig:
    """What of the image's config a node's start uses, as Docker uses it."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    user: str = ""

    @classmethod
    def from_oci(cls, config: Mapping[str, Any]) -> ImageConfig:
        """From an OCI image config blob's `config` object (absent keys: none)."""

        def strings(key: str) -> tuple[str, ...]:
            value = config.get(key) or ()
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        env = []
        for item in strings("Env"):
            key, _, value = item.partition("=")
            if key:
                env.append((key, value))
        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=tuple(env),
            workdir=str(config.get("WorkingDir") or ""),
            user=str(config.get("User") or ""),
        )


@dataclass(frozen=True)
class Image:
    """One image of the store."""

    ref: str  # the reference it was asked for (or its first, listed)
    digest: str
    rootfs: Path
    config: ImageConfig
    size: int  # bytes of the unpacked tree
    refs: tuple[str, ...] = ()
    last_used: float = 0.0


@dataclass(frozen=True)
class PullProgress:
    """How far a pull is: layers copied of all, and their bytes."""

    ref: str
    layers_done: int
    layers: int
    bytes_done: int
    bytes: int
    phase: str = "copying"  # "copying", "unpacking"

    @property
    def text(self) -> str:
        if self.phase == "unpacking":
            return f"unpacking {self.layers} layers ({_size(self.bytes)})"
        return (
            f"{self.layers_done}/{self.layers} layers, "
            f"{_size(self.bytes_done)} of {_size(self.bytes)}"
        )


def _size(n: int) -> str:
    """Bytes as people read them: 12.3 MB."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "failed"
    # skopeo and umoci prefix their own names and a log level: keep what says why.
    line = re.sub(r'^time="[^"]*" level=\w+ msg="(.*)"$', r"\1", line)
    line = re.sub(r"^(FATA|ERRO)\[\d+\] ", "", line)
    return line if len(line) <= ERROR_MAX else line[:ERROR_MAX] + "..."


def _mapping(variable: str, text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        registry, eq, mirror = item.partition("=")
        if not eq or not registry.strip() or not mirror.strip():
            raise ImageError(variable, f"{item!r} is not registry=mirror")
        found[registry.strip()] = mirror.strip()
    return found


def _tree_size(root: Path) -> int:
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


class ImageStore:
    """The store at `root` (see the module's docstring)."""

    def __init__(
        self,
        root: Path,
        *,
        mirrors: Mapping[str, str] | None = None,
        insecure: Sequence[str] = (),
        cache_max: int | None = None,
        runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ) -> None:
        self.root = root
        self.mirrors = dict(mirrors or {})
        self.insecure = tuple(insecure)
        self.cache_max = cache_max
        self._run = runner

    @classmethod
    def from_env(cls, data_dir: Path, environ: Mapping[str, str] = os.environ) -> ImageStore:
        """The store of the agent whose data directory is `data_dir`, with the mirrors,
        insecure registries and cache bound the environment sets."""
        mirrors = _mapping(MIRRORS_VARIABLE, environ.get(MIRRORS_VARIABLE, ""))
        insecure = [i.strip() for i in environ.get(INSECURE_VARIABLE, "").split(",") if i.strip()]
        cache = environ.get(CACHE_MAX_VARIABLE, "").strip()
        try:
            cache_max = parse_size(cache) if cache else None
        except UnitError as exc:
            raise ImageError(CACHE_MAX_VARIABLE, str(exc)) from None
        return cls(data_dir / "images", mirrors=mirrors, insecure=insecure, cache_max=cache_max)

    # --- paths --------------------------------------------------------------------------

    @property
    def layout(self) -> Path:
        return self.root / "layout"

    def tree(self, digest: str) -> Path:
        return self.root / "trees" / digest.removeprefix("sha256:")

    def _prepare(self) -> None:
        for directory in (self.root, self.root / "trees", self.root / "tmp"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        if not (self.layout / "oci-layout").exists():
            self._tool(["umoci", "init", "--layout", str(self.layout)], "the store")
        # What skopeo reads (self._skopeo): this store's trust policy and registries.
        _write_json(self.root / "policy.json", POLICY)
        (self.root / "registries.conf").write_text(self.registries_conf())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._prepare()
        with open(self.root / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- reading ------------------------------------------------------------------------

    def _refs(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / "refs.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_refs(self, refs: Mapping[str, str]) -> None:
        _write_json(self.root / "refs.json", dict(sorted(refs.items())))

    def _meta(self, digest: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.tree(digest) / "image.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _image(self, digest: str, ref: str | None = None) -> Image | None:
        meta = self._meta(digest)
        if meta is None or not (self.tree(digest) / "rootfs").is_dir():
            return None
        refs = tuple(r for r, d in sorted(self._refs().items()) if d == digest)
        return Image(
            ref=ref or (refs[0] if refs else digest),
            digest=digest,
            rootfs=self.tree(digest) / "rootfs",
            config=ImageConfig.from_oci(meta.get("config") or {}),
            size=int(meta.get("size", 0)),
            refs=refs,
            last_used=float(meta.get("last_used", 0.0)),
        )

    def get(self, digest: str) -> Image | None:
        """The image of that digest, if the store has it."""
        return self._image(digest) if DIGEST_RE.fullmatch(digest) else None

    def lookup(self, ref: str) -> Image | None:
        """The image a reference (or a digest) names on this host, if any."""
        if DIGEST_RE.fullmatch(ref):
            return self.get(ref)
        try:
            parsed = imageref.parse(ref)
        except ValueError:
            return None
        if parsed.digest is not None:
            return self._image(parsed.digest, parsed.canonical)
        digest = self._refs().get(parsed.canonical)
        return self._image(digest, parsed.canonical) if digest else None

    def _digests(self) -> list[str]:
        trees = self.root / "trees"
        if not trees.is_dir():
            return []
        return sorted(
            f"sha256:{p.name}"
            for p in trees.iterdir()
            if re.fullmatch(r"[0-9a-f]{64}", p.name) and (p / "image.json").exists()
        )

    def images(self, in_use: Mapping[str, Sequence[str]] | None = None) -> list[ImageFact]:
        """Every image of the store, with the deployments (tokens) `in_use` says run it."""
        used = in_use or {}
        facts: list[ImageFact] = []
        for digest in self._digests():
            image = self._image(digest)
            if image is not None:
                facts.append(
                    {
                        "digest": digest,
                        "refs": list(image.refs),
                        "size": image.size,
                        "last_used": image.last_used,
                        "tokens": sorted(used.get(digest, [])),
                    }
                )
        return facts

    def touch(self, digest: str) -> None:
        """Note that a deployment has just started from the image (for the cache's LRU)."""
        with self._locked():
            meta = self._meta(digest)
            if meta is not None:
                meta["last_used"] = time.time()
                _write_json(self.tree(digest) / "image.json", meta)

    # --- pulling ------------------------------------------------------------------------

    def ensure(
        self,
        ref: str,
        digest: str | None = None,
        *,
        logins: Sequence[RegistryLogin] = (),
        progress: Callable[[PullProgress], None] | None = None,
    ) -> Image:
        """The image `ref` names (pinned to `digest` when given), pulled if the store does
        not have it: Docker's "missing" policy, so a tag present is not asked again."""
        try:
            parsed = imageref.parse(ref)
        except ValueError as exc:
            raise ImageError(ref, str(exc)) from None
        want = digest or parsed.digest
        if want is not None and not DIGEST_RE.fullmatch(want):
            raise ImageError(ref, f"{want!r} is not a sha256 digest")
        with self._locked():
            if want is not None:
                present = self._image(want, parsed.canonical)
            else:
                known = self._refs().get(parsed.canonical)
                present = self._image(known, parsed.canonical) if known else None
            if present is not None:
                return present
            self.check_reachable(parsed)
            with self._registry_env(parsed, logins) as env:
                if want is None:
                    want = self._resolve(parsed, env)
                manifest = self._inspect(f"{parsed.name}@{want}", parsed.canonical, env)
                self._copy(parsed, want, manifest, env, progress)
            layers = manifest.get("layers") or []
            if progress is not None:
                total = sum(int(layer.get("size", 0)) for layer in layers)
                progress(
                    PullProgress(
                        parsed.canonical, len(layers), len(layers), total, total, "unpacking"
                    )
                )
            self._unpack(want, parsed.canonical)
            if parsed.digest is None:
                refs = self._refs()
                refs[parsed.canonical] = want
                self._write_refs(refs)
            image = self._image(want, parsed.canonical)
            assert image is not None
            return image

    def check_reachable(self, ref: imageref.ImageRef) -> None:
        """Refuse a pull that would make this host (as root) talk to one of its own
        services: a registry on loopback, link-local or unspecified addresses is reached
        only when an admin named it (LABMGR_INSECURE_REGISTRIES, or a mirror's)."""
        registry = ref.registry
        configured = set(self.insecure) | set(self.mirrors.values())
        if registry in configured or registry in self.mirrors:
            return
        host, port = _host_port(registry)
        try:
            found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise ImageError(ref.canonical, f"the registry {registry} has no address") from None
        for *_, address in found:
            ip = ipaddress.ip_address(str(address[0]).split("%")[0])
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
                raise ImageError(
                    ref.canonical,
                    f"the registry {registry} is this host's own ({ip}): only a registry an "
                    f"admin names in {INSECURE_VARIABLE} or {MIRRORS_VARIABLE} may be local",
                )

    def _resolve(self, ref: imageref.ImageRef, env: Mapping[str, str]) -> str:
        """The digest of the manifest the tag names for this host's platform."""
        raw = self._inspect_raw(f"{ref.canonical}", ref.canonical, env)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        try:
            manifest = json.loads(raw)
        except ValueError:
            raise ImageError(ref.canonical, "the registry's manifest is not JSON") from None
        if manifest.get("mediaType") not in INDEX_TYPES and "manifests" not in manifest:
            return digest
        arch = ARCHES.get(platform.machine(), platform.machine())
        for entry in manifest.get("manifests") or []:
            where = entry.get("platform") or {}
            if where.get("os") == "linux" and where.get("architecture") == arch:
                found = str(entry.get("digest", ""))
                if DIGEST_RE.fullmatch(found):
                    return found
        raise ImageError(ref.canonical, f"the image has no linux/{arch} variant")

    def _inspect_raw(self, target: str, shown: str, env: Mapping[str, str]) -> bytes:
        argv = [*self._skopeo(), "inspect", "--raw", "--authfile", env["REGISTRY_AUTH_FILE"]]
        argv += [*self._tls(target), f"docker://{target}"]
        try:
            done = subprocess.run(
                argv, capture_output=True, env=dict(env), timeout=INSPECT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            raise ImageError(shown, f"the registry did not answer in {INSPECT_SECONDS} s") from None
        if done.returncode != 0:
            raise ImageError(shown, _one_line(done.stderr.decode("utf-8", "replace")))
        return done.stdout

    def _inspect(self, target: str, shown: str, env: Mapping[str, str]) -> dict[str, Any]:
        raw = self._inspect_raw(target, shown, env)
        try:
            manifest = json.loads(raw)
        except ValueError:
            raise ImageError(shown, "the registry's manifest is not JSON") from None
        if not isinstance(manifest, dict):
            raise ImageError(shown, "the registry's manifest is not a JSON object")
        return manifest

    def _skopeo(self) -> list[str]:
        """skopeo with this store's trust policy and registries.conf, not the system's."""
        return [
            "skopeo",
            "--policy",
            str(self.root / "policy.json"),
            "--registries-conf",
            str(self.root / "registries.conf"),
        ]

    def _tls(self, target: str) -> list[str]:
        """skopeo's TLS flag for a pull of `target`: off for an insecure registry (the
        mirrors' own insecurity is in registries.conf)."""
        registry = target.split("/", 1)[0]
        return ["--tls-verify=false"] if registry in self.insecure else []

    def _copy(
        self,
        ref: imageref.ImageRef,
        digest: str,
        manifest: Mapping[str, Any],
        env: Mapping[str, str],
        progress: Callable[[PullProgress], None] | None,
    ) -> None:
        layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
        sizes = {str(layer.get("digest", "")): int(layer.get("size", 0)) for layer in layers}
        total = sum(sizes.values())
        argv = [*self._skopeo(), "copy", "--retry-times", "2"]
        argv += ["--src-authfile", env["REGISTRY_AUTH_FILE"]]
        target = f"{ref.name}@{digest}"
        tls = self._tls(target)
        argv += [t.replace("--tls-verify", "--src-tls-verify") for t in tls]
        argv += [f"docker://{target}", f"oci:{self.layout}:{digest.removeprefix('sha256:')}"]
        done_layers, done_bytes = 0, 0
        if progress is not None:
            progress(PullProgress(ref.canonical, 0, len(layers), 0, total))
        with subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            text=True,
        ) as copy:
            assert copy.stdout is not None and copy.stderr is not None
            started = time.monotonic()
            for line in copy.stdout:
                # "Copying blob 4abcf2066143 done" (a line per blob when not on a terminal)
                match = re.match(r"Copying blob (?:sha256:)?([0-9a-f]{6,64})", line)
                if match is None:
                    continue
                done_layers += 1
                short = match.group(1)
                done_bytes += next((s for d, s in sizes.items() if short in d), 0)
                if progress is not None:
                    progress(
                        PullProgress(
                            ref.canonical,
                            min(done_layers, len(layers)),
                            len(layers),
                            min(done_bytes, total),
                            total,
                        )
                    )
                if time.monotonic() - started > PULL_SECONDS:
                    copy.kill()
            error = copy.stderr.read()
            code = copy.wait()
        if code != 0:
            self._untag(digest)
            raise ImageError(ref.canonical, _one_line(error))

    def _unpack(self, digest: str, shown: str) -> None:
        """Unpack the layout's manifest tagged `digest` into trees/<hex>, whole or not at
        all (umoci checks each blob against its digest as it reads it)."""
        tag = digest.removeprefix("sha256:")
        work = Path(tempfile.mkdtemp(prefix=f"{tag[:12]}.", dir=self.root / "tmp"))
        try:
            self._tool(
                ["umoci", "raw", "unpack", "--image", f"{self.layout}:{tag}", str(work / "rootfs")],
                shown,
            )
            config = self._config(tag)
            meta = {
                "digest": digest,
                "config": config,
                "size": _tree_size(work / "rootfs"),
                "pulled": time.time(),
                "last_used": 0.0,
            }
            _write_json(work / "image.json", meta)
            os.chmod(work, 0o700)
            target = self.tree(digest)
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _blob(self, digest: str) -> bytes:
        algorithm, _, hexdigest = digest.partition(":")
        return (self.layout / "blobs" / algorithm / hexdigest).read_bytes()

    def _index(self) -> dict[str, Any]:
        data = json.loads((self.layout / "index.json").read_text())
        return data if isinstance(data, dict) else {}

    def _tagged(self, tag: str) -> str | None:
        """The layout's manifest digest a tag names."""
        for entry in self._index().get("manifests") or []:
            if (entry.get("annotations") or {}).get(REF_ANNOTATION) == tag:
                return str(entry.get("digest"))
        return None

    def _config(self, tag: str) -> dict[str, Any]:
        manifest_digest = self._tagged(tag)
        if manifest_digest is None:
            raise ImageError(tag, "the store's layout lost its manifest")
        manifest = json.loads(self._blob(manifest_digest))
        config = json.loads(self._blob(manifest["config"]["digest"]))
        inner = config.get("config") or {}
        return inner if isinstance(inner, dict) else {}

    def _tool(self, argv: list[str], shown: str, **how: Any) -> subprocess.CompletedProcess[str]:
        try:
            done = self._run(
                argv, capture_output=True, text=True, timeout=PULL_SECONDS, check=False, **how
            )
        except FileNotFoundError:
            raise ImageError(shown, f"{argv[0]} is not installed on this host") from None
        except subprocess.TimeoutExpired:
            raise ImageError(shown, f"{argv[0]} took over {PULL_SECONDS} s") from None
        if done.returncode != 0:
            raise ImageError(shown, _one_line(done.stderr or done.stdout))
        return done

    def _untag(self, tag_or_digest: str) -> None:
        tag = tag_or_digest.removeprefix("sha256:")
        if self._tagged(tag) is not None:
            with contextlib.suppress(ImageError):
                self._tool(["umoci", "rm", "--image", f"{self.layout}:{tag}"], tag)
        with contextlib.suppress(ImageError):
            self._tool(["umoci", "gc", "--layout", str(self.layout)], tag)

    @contextlib.contextmanager
    def _registry_env(
        self, ref: imageref.ImageRef, logins: Sequence[RegistryLogin]
    ) -> Iterator[dict[str, str]]:
        """The environment skopeo runs in: this store's registries.conf and policy, and
        the logins in an auth file that lives only as long as the pull."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.root / "tmp"),
            "TMPDIR": str(self.root / "tmp"),
        }
        auths = {
            login["registry"]: {
                "auth": base64.b64encode(
                    f"{login['username']}:{login['password']}".encode()
                ).decode()
            }
            for login in logins
        }
        # A mirror is logged into as the registry it stands for, unless a login names it.
        for registry, mirror in self.mirrors.items():
            if registry in auths and mirror not in auths:
                auths[mirror] = auths[registry]
        fd, path = tempfile.mkstemp(prefix="auth.", suffix=".json", dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "w") as file:
                json.dump({"auths": auths}, file)
            env["REGISTRY_AUTH_FILE"] = path
            yield env
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def registries_conf(self) -> str:
        """containers-registries.conf(5) for the mirrors and insecure registries."""
        lines = ['short-name-mode = "disabled"', "unqualified-search-registries = []", ""]
        insecure = set(self.insecure)
        for registry in sorted(set(self.mirrors) | insecure):
            lines += ["[[registry]]", f"prefix = {json.dumps(registry)}"]
            lines += [f"location = {json.dumps(_hub(registry))}"]
            lines += [f"insecure = {str(registry in insecure).lower()}"]
            mirror = self.mirrors.get(registry)
            if mirror is not None:
                local = mirror.split(":")[0] in ("127.0.0.1", "localhost", "[::1]")
                lines += ["[[registry.mirror]]", f"location = {json.dumps(mirror)}"]
                lines += [f"insecure = {str(mirror in insecure or local).lower()}"]
            lines.append("")
        return "\n".join(lines)

    # --- loading and building -----------------------------------------------------------

    def load(self, archive: Path, name: str | None = None) -> list[Image]:
        """The images of a `docker save` or OCI archive (or an OCI layout directory), in
        the store: each tagged as the archive says, or as `name` if given (an archive of
        one image only)."""
        shown = name or archive.name
        if name is not None:
            try:
                name = imageref.parse(name).canonical
            except ValueError as exc:
                raise ImageError(shown, str(exc)) from None
        sources = self._archive_sources(archive, shown)
        if name is not None and len(sources) != 1:
            raise ImageError(shown, f"the archive holds {len(sources)} images: name none")
        loaded: list[Image] = []
        with self._locked():
            for source, refs in sources:
                refs = [name] if name is not None else refs
                if not refs:
                    raise ImageError(
                        shown, "the archive does not say which image it is: give it a name"
                    )
                loaded.append(self._load_one(source, refs, shown))
        return loaded

    def _archive_sources(self, archive: Path, shown: str) -> list[tuple[str, list[str]]]:
        """skopeo source names for each image of the archive, with the references the
        archive gives it."""
        if archive.is_dir():
            if not (archive / "oci-layout").exists():
                raise ImageError(shown, "the directory is not an OCI image layout")
            index = json.loads((archive / "index.json").read_text())
            return [
                (f"oci:{archive}:{tag}" if tag else f"oci:{archive}", _ref_list(tag))
                for tag in _layout_tags(index)
            ]
        try:
            with tarfile.open(archive) as tar:
                names = {m.name.removeprefix("./") for m in tar.getmembers()[:10000]}
                if "oci-layout" in names:
                    member = tar.extractfile(
                        "index.json" if "index.json" in tar.getnames() else "./index.json"
                    )
                    index = json.loads(member.read()) if member else {}
                    return [
                        (
                            f"oci-archive:{archive}:{tag}" if tag else f"oci-archive:{archive}",
                            _ref_list(tag),
                        )
                        for tag in _layout_tags(index)
                    ]
                if "manifest.json" in names:
                    member = tar.extractfile(
                        "manifest.json" if "manifest.json" in tar.getnames() else "./manifest.json"
                    )
                    entries = json.loads(member.read()) if member else []
                    return [
                        (f"docker-archive:{archive}:@{i}", _canonical_list(e.get("RepoTags") or []))
                        for i, e in enumerate(entries)
                    ]
        except (OSError, tarfile.TarError, ValueError, KeyError) as exc:
            raise ImageError(shown, f"not a docker save or OCI archive ({exc})") from None
        raise ImageError(
            shown, "not a docker save or OCI archive (no manifest.json, no oci-layout)"
        )

    def _load_one(self, source: str, refs: list[str], shown: str) -> Image:
        work = f"load-{os.getpid()}-{time.monotonic_ns()}"
        argv = [*self._skopeo(), "copy", "--quiet"]
        try:
            self._tool([*argv, source, f"oci:{self.layout}:{work}"], shown)
            digest = self._tagged(work)
            if digest is None:
                raise ImageError(shown, "the archive's image did not reach the store")
            tag = digest.removeprefix("sha256:")
            if self._tagged(tag) is None:
                self._tool(["umoci", "tag", "--image", f"{self.layout}:{work}", tag], shown)
        finally:
            self._untag(work)
        if self._meta(digest) is None:
            self._unpack(digest, shown)
        current = self._refs()
        for ref in refs:
            current[ref] = digest
        self._write_refs(current)
        image = self._image(digest, refs[0])
        assert image is not None
        return image

    def build_debian(
        self,
        name: str,
        suite: str = "bookworm",
        packages: Sequence[str] = (),
        *,
        mirror: str | None = None,
        cmd: Sequence[str] = ("/bin/bash",),
        variant: str = "apt",
    ) -> Image:
        """An image built from Debian's packages with mmdebstrap (no registry needed),
        tagged `name`: Debian `suite` with `packages` added, its Cmd `cmd`."""
        try:
            canonical = imageref.parse(name).canonical
        except ValueError as exc:
            raise ImageError(name, str(exc)) from None
        self._prepare()
        work = Path(tempfile.mkdtemp(prefix="build.", dir=self.root / "tmp"))
        try:
            tarball = work / "rootfs.tar"
            argv = ["mmdebstrap", f"--variant={variant}", "--mode=root", "--format=tar"]
            if packages:
                argv.append("--include=" + ",".join(packages))
            argv += [suite, str(tarball)]
            if mirror:
                argv.append(mirror)
            self._tool(argv, canonical)
            layout = work / "layout"
            self._tool(["umoci", "init", "--layout", str(layout)], canonical)
            self._tool(["umoci", "new", "--image", f"{layout}:build"], canonical)
            self._tool(
                ["umoci", "raw", "add-layer", "--image", f"{layout}:build", str(tarball)],
                canonical,
            )
            config = ["umoci", "config", "--image", f"{layout}:build", "--clear=config.cmd"]
            for arg in cmd:
                config += ["--config.cmd", arg]
            config += [
                "--config.env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ]
            config += ["--os", "linux", "--architecture", ARCHES.get(platform.machine(), "amd64")]
            self._tool(config, canonical)
            (image,) = self.load(layout, canonical)
            return image
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # --- removing -----------------------------------------------------------------------

    def remove(
        self, refs: Sequence[str], in_use: Mapping[str, Sequence[str]]
    ) -> tuple[list[str], list[str]]:
        """Untag each reference (a digest: the image and all its references); an image
        left with no reference goes, unless a deployment runs it. Returns what was removed
        and, for each kept, "ref: why"."""
        removed: list[str] = []
        kept: list[str] = []
        with self._locked():
            current = self._refs()
            for ref in refs:
                image = self.lookup(ref)
                if image is None:
                    kept.append(f"{ref}: no such image on this host")
                    continue
                users = list(in_use.get(image.digest, []))
                if users:
                    kept.append(f"{ref}: used by {', '.join(users)}")
                    continue
                if DIGEST_RE.fullmatch(ref):
                    names = [r for r, d in current.items() if d == image.digest]
                else:
                    names = [image.ref]
                for name in names:
                    current.pop(name, None)
                self._write_refs(current)
                if not any(d == image.digest for d in current.values()):
                    self._delete(image.digest)
                removed.append(ref)
        return removed, kept

    def prune(self, in_use: Mapping[str, Sequence[str]], *, all: bool) -> list[str]:
        """Remove images no deployment runs: every one (`all`), or the least recently used
        until the store is within its cache bound (none: nothing). Returns their names."""
        with self._locked():
            images = [i for i in (self._image(d) for d in self._digests()) if i is not None]
            unused = sorted(
                (i for i in images if not in_use.get(i.digest)), key=lambda i: i.last_used
            )
            if not all:
                if self.cache_max is None:
                    return []
                total = sum(i.size for i in images)
                chosen = []
                for image in unused:
                    if total <= self.cache_max:
                        break
                    chosen.append(image)
                    total -= image.size
                unused = chosen
            current = self._refs()
            for image in unused:
                for name in image.refs:
                    current.pop(name, None)
            self._write_refs(current)
            for image in unused:
                self._delete(image.digest)
            return [", ".join(i.refs) or i.digest for i in unused]

    def _delete(self, digest: str) -> None:
        tree = self.tree(digest)
        doomed = tree.with_name(f"{tree.name}.removing")
        if tree.exists():
            tree.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        self._untag(digest)

    def leftovers(self) -> list[Path]:
        """Work a crash left in tmp/ (a pull, a load, a build cut short)."""
        tmp = self.root / "tmp"
        return sorted(tmp.iterdir()) if tmp.is_dir() else []

    def clean(self) -> None:
        """Remove what a crash left (only under the lock: no pull is under way)."""
        with self._locked():
            for path in self.leftovers():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def _host_port(registry: str) -> tuple[str, int]:
    """The host and port of a registry as a reference names it (443 when none)."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 443
    host, colon, port = registry.partition(":")
    return host, int(port) if colon and port.isdigit() else 443


def _hub(registry: str) -> str:
    return "registry-1.docker.io" if registry == imageref.DOCKER_HUB else registry


def _write_json(path: Path, data: object) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.chmod(temporary, 0o600)
    temporary.rename(path)


def _layout_tags(index: Mapping[str, Any]) -> list[str]:
    tags = [
        str((e.get("annotations") or {}).get(REF_ANNOTATION, ""))
        for e in index.get("manifests") or []
    ]
    return tags or [""]


def _ref_list(tag: str) -> list[str]:
    """The reference an OCI layout's tag stands for, when it is a whole one."""
    if not tag or ("/" not in tag and ":" not in tag):
        return []
    with contextlib.suppress(ValueError):
        return [imageref.parse(tag).canonical]
    return []


def _canonical_list(tags: Sequence[str]) -> list[str]:
    found = []
    for tag in tags:
        with contextlib.suppress(ValueError):
            found.append(imageref.parse(str(tag)).canonical)
    return found


__all__ = [
    "Image",
    "ImageConfig",
    "ImageError",
    "ImageStore",
    "PullProgress",
]
