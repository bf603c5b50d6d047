"""Images the tests build themselves, offline, and a real registry to serve them.

`build_busybox_image` makes an OCI image layout with umoci from the host's static
busybox (Debian's busybox-static): one layer holding busybox, its applets as symbolic
links, an /etc/passwd and /etc/group with root and `app` (1000:1000), and any extra files;
the config's Cmd, Env, WorkingDir and User as given. `Registry` runs Debian's
docker-registry on a free loopback port with its storage in a directory of the test, and
`push` copies a layout's tag into it with skopeo."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh",
    "ls",
    "cat",
    "env",
    "id",
    "sleep",
    "echo",
    "touch",
    "rm",
    "stat",
    "mknod",
    "wc",
    "pwd",
    "ip",
    "ps",
    "hostname",
    "chown",
    "mkdir",
    "true",
    "false",
    "grep",
)
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\n"


def _add(
    tar: tarfile.TarFile,
    name: str,
    data: bytes | None = None,
    *,
    mode: int = 0o644,
    link: str | None = None,
    directory: bool = False,
) -> None:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.mtime = 0
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    elif link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
        tar.addfile(info)
    else:
        body = data or b""
        info.size, info.mode = len(body), mode
        tar.addfile(info, io.BytesIO(body))


def busybox_layer(path: Path, extra_files: Mapping[str, bytes] | None = None) -> None:
    """A layer tarball: busybox, its applets, passwd/group, `extra_files`."""
    extra = dict(extra_files or {})
    with tarfile.open(path, "w") as tar:
        directories = {"bin", "etc", "tmp", "root", "proc", "sys", "dev", "srv", "srv/app"}
        for name in extra:
            parts = name.split("/")[:-1]
            directories |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
        for directory in sorted(directories):
            _add(tar, directory, directory=True)
        _add(tar, "bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", link="busybox")
        _add(tar, "etc/passwd", PASSWD)
        _add(tar, "etc/group", GROUP)
        for name, data in sorted(extra.items()):
            _add(tar, name, data)


def _umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True, text=True)


def build_busybox_image(
    layout: Path,
    tag: str,
    *,
    cmd: Sequence[str] = ("sleep", "3600"),
    entrypoint: Sequence[str] = (),
    env: Sequence[tuple[str, str]] = (("PATH", "/bin"),),
    workdir: str = "",
    user: str = "",
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """An OCI layout at `layout` (made if missing) with the image tagged `tag`."""
    if not (layout / "oci-layout").exists():
        _umoci("init", "--layout", str(layout))
    image = f"{layout}:{tag}"
    _umoci("new", "--image", image)
    work = layout.parent / f".{layout.name}-{tag}.layer.tar"
    try:
        busybox_layer(work, extra_files)
        _umoci("raw", "add-layer", "--image", image, str(work))
    finally:
        work.unlink(missing_ok=True)
    config = ["config", "--image", image, "--os", "linux", "--architecture", "amd64"]
    config += ["--clear=config.cmd", "--clear=config.entrypoint", "--clear=config.env"]
    for arg in cmd:
        config += ["--config.cmd", arg]
    for arg in entrypoint:
        config += ["--config.entrypoint", arg]
    for key, value in env:
        config += ["--config.env", f"{key}={value}"]
    if workdir:
        config += ["--config.workingdir", workdir]
    if user:
        config += ["--config.user", user]
    _umoci(*config)
    return layout


DEBIAN_MIRROR = "http://deb.debian.org/debian"  # mmdebstrap's default


def debian_mirror_answers() -> bool:
    """Whether mmdebstrap can reach Debian's mirror from here (image builds need it)."""
    try:
        with urllib.request.urlopen(f"{DEBIAN_MIRROR}/dists/bookworm/Release", timeout=5):
            return True
    except OSError:
        return False


def _bcrypt(password: str) -> str:
    """A bcrypt hash for the registry's htpasswd (libxcrypt's, through crypt(3))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    """Debian's docker-registry serving plain HTTP on 127.0.0.1:<free port>, storing in
    `directory`; stopped (and its storage kept for the test to inspect) on exit."""

    def __init__(
        self, directory: Path, users: Mapping[str, str] | None = None, port: int | None = None
    ) -> None:
        self.directory = directory
        self.users = dict(users or {})  # username -> password: basic auth when any
        self.port = port or _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def storage(self) -> Path:
        return self.directory / "storage"

    def __enter__(self) -> Registry:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.yml"
        settings: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.address},
        }
        if self.users:
            htpasswd = self.directory / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{_bcrypt(p)}\n" for u, p in self.users.items()))
            settings["auth"] = {"htpasswd": {"realm": "tests", "path": str(htpasswd)}}
        config.write_text(json.dumps(settings))
        log = open(self.directory / "registry.log", "wb")
        self._process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers (401: a login is needed)
            except OSError:
                pass
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(
            f"docker-registry did not start: {(self.directory / 'registry.log').read_text()}"
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def push(self, layout: Path, tag: str, name: str) -> str:
        """Copy the layout's `tag` to `<address>/<name>:<tag>`; returns that reference."""
        ref = f"{self.address}/{name}:{tag}"
        login = next(iter(self.users.items()), None)
        creds = ["--dest-creds", f"{login[0]}:{login[1]}"] if login else []
        subprocess.run(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                *creds,
                f"oci:{layout}:{tag}",
                f"docker://{ref}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return ref

    def digest(self, name: str, tag: str) -> str:
        """The manifest digest the registry serves for `name:tag`."""
        request = urllib.request.Request(
            f"http://{self.address}/v2/{name}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json", **self._auth()},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return str(answer.headers["Docker-Content-Digest"])

    def _auth(self) -> dict[str, str]:
        login = next(iter(self.users.items()), None)
        if login is None:
            return {}
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def blobs(self) -> list[Path]:
        """The blob files of its storage (to corrupt one)."""
        root = self.storage / "docker/registry/v2/blobs"
        return sorted(p for p in root.rglob("data") if p.is_file())
