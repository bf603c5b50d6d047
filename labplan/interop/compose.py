"""Compose files (the Compose Specification) to the labfile (`labplan.interop.compose_export`
writes labs back as compose files).

Services become nodes, networks become networks of the same driver; a service with no
`networks` key joins the `default` bridge network, as in Compose. `${VAR}` and
`${VAR:-default}` are read as Compose reads them with no environment set: the default,
else empty (noted). Volumes, anonymous volumes and tmpfs mounts become volumes of the
lab (tmpfs of the deployment), absolute bind mounts host mounts (admins only). What has
no labfile form is refused (`build` without an image, `external` networks and volumes,
binds of folders beside the file), the rest noted, each by the compose file's own path.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping
from typing import Any

from labplan.errors import LabfileError
from labplan.interop.common import (
    LAB_NAME,
    Imported,
    Importer,
    Note,
    labfile_name,
    tmpfs_size,
)

DEFAULT_NETWORK = "default"
TOP_KEYS = ("name", "version", "services", "networks", "volumes", "secrets", "configs")
SERVICE_KEYS = (
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "working_dir",
    "user",
    "hostname",
    "mem_limit",
    "memswap_limit",
    "cpus",
    "pids_limit",
    "deploy",
    "privileged",
    "network_mode",
    "networks",
    "container_name",
    "sysctls",
    "volumes",
    "volumes_from",
    "tmpfs",
)
NOTED_SERVICE_KEYS = {
    "ports": "labmgr publishes no ports on the host; reach the node from a terminal or "
    "another node of the lab",
    "expose": "every port of a node is open to the lab's other nodes",
    "depends_on": "nodes start together; exec commands run once every node is up",
    "restart": "labmgr reports a node that stops instead of restarting it",
    "healthcheck": "health checks are not run",
    "labels": "labels are not kept",
    "cap_add": "a node has the capabilities of its user namespace (or privileged: true)",
    "cap_drop": "a node has the capabilities of its user namespace",
    "devices": "host devices are not passed into nodes",
    "secrets": "secrets are not mounted",
    "configs": "configs are not mounted",
    "logging": "a node's output is kept by labmgr",
    "env_file": "files beside the compose file are not read; write the variables under environment",
    "dns": "the node's resolver is the host's",
    "extra_hosts": "/etc/hosts lists the lab's nodes",
    "ulimits": "limits are the node's cgroup's",
    "stop_signal": "nodes are stopped with the lab",
    "stop_grace_period": "nodes are stopped with the lab",
    "tty": "terminals are opened from the lab's page",
    "stdin_open": "terminals are opened from the lab's page",
    "init": "every node runs labmgr's own init as PID 1",
    "platform": "nodes run on the host's architecture",
    "pull_policy": "labmgr pulls an image it does not hold",
    "cpu_shares": "use limits.cpu_weight",
    "shm_size": "the node's /dev/shm keeps its default size",
    "security_opt": "not carried over",
    "profiles": "every service is a node of the lab",
}
NETWORK_KEYS = ("driver", "driver_opts", "ipam", "internal", "enable_ipv6", "external", "name")
NETWORK_DRIVERS = {
    "bridge": "bridge",
    "macvlan": "macvlan",
    "ipvlan": "ipvlan",
    "overlay": "overlay",
}
VOLUME_KEYS = ("driver", "driver_opts", "external", "labels", "name")
MOUNT_KEYS = ("type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency")
# Long-syntax mount types with no labfile form, and why.
MOUNT_TYPES_REFUSED = {
    "npipe": "a Windows named pipe",
    "cluster": "a Swarm cluster volume",
    "image": "an image's files mounted at a path: run that image as a node, or copy the "
    "files in with an exec command",
}
# Short-syntax options other than ro and rw, and why each is left out.
MOUNT_OPTIONS_NOTED = {
    "z": "SELinux labels are not set",
    "Z": "SELinux labels are not set",
    "shared": "a mount's propagation is private",
    "rshared": "a mount's propagation is private",
    "slave": "a mount's propagation is private",
    "rslave": "a mount's propagation is private",
    "private": "a mount's propagation is private",
    "rprivate": "a mount's propagation is private",
    "consistent": "Docker for Mac's option",
    "cached": "Docker for Mac's option",
    "delegated": "Docker for Mac's option",
}
TMPFS_NOTE = (
    "a tmpfs of the deployment, kept across the node's restarts until the lab is destroyed "
    "(Docker's is the container's own, emptied when it stops)"
)
MTU_OPTION = "com.docker.network.driver.mtu"
ATTACHMENT_KEYS = ("ipv4_address", "ipv6_address", "mac_address", "aliases", "priority")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$\$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(value: object) -> int:
    """Bytes of a compose size: a number of bytes, or `512m`, `1g`, `1gb`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size like 512m or 1g")
    return int(float(match.group(1)) * _FACTORS[match.group(2).lower()])


def _substitute(text: str, path: str, notes: list[Note]) -> str:
    """`${VAR:-default}` as Compose reads it with no variable set."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(3)
        if default is None:
            notes.append(Note(path, f"${{{name}}} is not set: read as empty"))
            return ""
        return default

    return _VARIABLE.sub(value, text)


def _expand(value: Any, path: str, notes: list[Note]) -> Any:
    if isinstance(value, str):
        return _substitute(value, path, notes)
    if isinstance(value, list):
        return [_expand(v, f"{path}.{i}".lstrip("."), notes) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _expand(v, f"{path}.{k}".lstrip("."), notes) for k, v in value.items()}
    return value


def _subnets(networks: Mapping[str, Any]) -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets written under the networks' ipam config, where well formed."""
    found: list[ipaddress.IPv4Network] = []
    for network in networks.values():
        ipam = network.get("ipam") if isinstance(network, Mapping) else None
        configs = ipam.get("config") if isinstance(ipam, Mapping) else None
        for config in configs if isinstance(configs, list) else ():
            try:
                subnet = ipaddress.ip_network(str(config.get("subnet")), strict=False)
            except (AttributeError, ValueError):
                continue
            if isinstance(subnet, ipaddress.IPv4Network):
                found.append(subnet)
    return found


def _is_path(source: object) -> bool:
    """Whether a mount's source is a path (a bind) rather than a volume's name, as
    Compose tells them: by its first character."""
    return isinstance(source, str) and source.startswith(("/", ".", "~"))


def _cpus(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number of CPUs like 0.5") from None


class _Importer(Importer):
    def __init__(self, tree: Mapping[str, Any]) -> None:
        super().__init__()
        self.tree: Mapping[str, Any] = _expand(
            {k: v for k, v in tree.items() if not str(k).startswith("x-")}, "", self.notes
        )
        self.networks: dict[str, dict[str, Any]] = {}
        self.network_names: dict[str, str] = {}  # compose name -> labfile name
        self.declared: list[ipaddress.IPv4Network] = []  # every IPv4 subnet the file gives
        self.services: set[str] = set()  # the file's own service names
        self.version = 1

    def run(self) -> Imported:
        for key in self.tree:
            if key not in TOP_KEYS:
                self.error(str(key), f"{key!r} is not a key of a compose file")
        if "version" in self.tree:
            self.note("version", "obsolete in the Compose Specification; ignored")
        for key in ("secrets", "configs"):
            if key in self.tree:
                self.note(key, "not carried over: nodes have none")
        raw_name = self.tree.get("name", "compose")
        name = labfile_name(str(raw_name), LAB_NAME)
        if "name" in self.tree and name != str(raw_name):
            self.note("name", f"{raw_name!r} is written {name!r}: a lab's name is [a-z][a-z0-9-]")
        volumes = self.mapping(self.tree.get("volumes"), "volumes", "volumes")
        for key, value in volumes.items():
            self.read_volume(str(key), self.mapping(value, f"volumes.{key}", "a volume"))
        declared = self.mapping(self.tree.get("networks"), "networks", "networks")
        self.declared = list(_subnets(declared))
        for key, value in declared.items():
            self.read_network(str(key), self.mapping(value, f"networks.{key}", "a network"))
        services = self.mapping(self.tree.get("services"), "services", "services")
        if not services and not self.errors:
            self.error("services", "a compose file needs services")
        nodes: dict[str, Any] = {}
        sources: dict[str, str] = {}
        self.services = {str(key) for key in services}
        for key, value in services.items():
            path = f"services.{key}"
            label = labfile_name(str(key))
            if label in nodes:
                self.error(path, f"{key!r} and {sources[label]!r} are both written {label!r}")
                continue
            if label != key:
                self.note(path, f"{key!r} is written {label!r}: a node's name is [a-z][a-z0-9-]")
            sources[label] = str(key)
            node = self.read_service(path, label, self.mapping(value, path, "a service"))
            if node is not None:
                nodes[label] = node
        self.volumes_from(services, nodes)
        if self.errors:
            raise LabfileError(self.errors)
        out: dict[str, Any] = {"labfile": self.version, "name": name}
        out["description"] = "Imported from a compose file"
        used = {net for node in nodes.values() for net in node.get("networks", {})}
        networks = {k: v for k, v in self.networks.items() if k in used}
        for unused in sorted(set(self.networks) - used):
            self.note(f"networks.{unused}", "no service joins it: left out")
        if networks:
            out["networks"] = networks
        out["nodes"] = nodes
        if self.volumes:
            out["volumes"] = self.volumes
            out["labfile"] = 2
        if any("mounts" in node for node in nodes.values()):
            out["labfile"] = 2
        for label, node in nodes.items():
            self.node_origins(label, f"services.{sources[label]}", node)
        return Imported(out, tuple(self.notes), "compose", self.origins)

    # volumes

    def read_volume(self, key: str, volume: Mapping[str, Any]) -> None:
        """A top-level volume: a volume of the lab, a tmpfs of the deployment."""
        path = f"volumes.{key}"
        for option in volume:
            if option not in VOLUME_KEYS and not str(option).startswith("x-"):
                self.error(f"{path}.{option}", f"{option!r} is not a key of a volume")
        if volume.get("external"):
            self.error(
                f"{path}.external",
                "a lab makes its own volumes; an external volume, made outside the file, "
                "is one labmgr cannot mount",
            )
            return
        name = self.volume(("named", key), key)
        if name != key:
            self.note(path, f"{key!r} is written {name!r}: a volume's name is [a-z][a-z0-9-]")
        if "labels" in volume:
            self.note(f"{path}.labels", "not carried over: labels are not kept")
        if "name" in volume:
            self.note(f"{path}.name", "not carried over: labmgr names what it makes")
        driver = volume.get("driver", "local")
        options = self.mapping(volume.get("driver_opts"), f"{path}.driver_opts", "driver_opts")
        if driver == "local" and options.get("type") == "tmpfs":
            self.tmpfs_options(str(options.get("o", "")), f"{path}.driver_opts.o", name)
            for option in options:
                if option not in ("type", "device", "o"):
                    self.note(f"{path}.driver_opts.{option}", "not carried over")
            return
        for option, value in (("driver", volume.get("driver")), ("driver_opts", options)):
            if value and value != "local":
                self.note(
                    f"{path}.{option}",
                    "not carried over: the lab's volume is a tmpfs of the deployment",
                )
        self.note(
            path,
            f"the lab's volume {name!r}: a tmpfs of the deployment (256M unless its size says), "
            "starting empty and kept until the lab is destroyed, not Docker's volume on disk",
        )

    def tmpfs_options(self, text: str, path: str, name: str) -> None:
        """A tmpfs's mount options (`size=64m,mode=1777`): its size the volume's."""
        for option in filter(None, (o.strip() for o in text.split(","))):
            key, _, value = option.partition("=")
            if key != "size":
                self.note(path, f"{option}: not carried over: the volume's tmpfs takes its size")
                continue
            if value.endswith("%"):
                self.note(path, f"{option}: not carried over: a volume's size is in bytes (256M)")
                continue
            try:
                size = self.volume_size(tmpfs_size(value), path)
            except ValueError as bad:
                self.error(path, str(bad))
                continue
            if size is not None:
                self.volumes[name]["size"] = size

    def service_volumes(
        self, path: str, label: str, service: Mapping[str, Any], out: dict[str, Any]
    ) -> None:
        raw = service.get("volumes")
        if raw is not None and not isinstance(raw, list):
            self.error(f"{path}.volumes", "volumes is a list of mounts")
        for index, entry in enumerate(raw if isinstance(raw, list) else ()):
            vpath = f"{path}.volumes.{index}"
            if isinstance(entry, str):
                self.short_volume(vpath, f"{label}-{index}", entry, out)
            elif isinstance(entry, Mapping):
                self.long_volume(vpath, f"{label}-{index}", entry, out)
            else:
                self.error(vpath, "a mount is SOURCE:TARGET[:MODE] or a mapping with a type")
        tmpfs = service.get("tmpfs")
        if tmpfs is not None:
            listed = tmpfs if isinstance(tmpfs, list) else [tmpfs]
            for index, entry in enumerate(listed):
                tpath = f"{path}.tmpfs" + (f".{index}" if isinstance(tmpfs, list) else "")
                if not isinstance(entry, str):
                    self.error(tpath, "a tmpfs is a path inside the node, like /run")
                    continue
                where, _, options = entry.partition(":")
                self.tmpfs(tpath, f"{label}-tmpfs-{index}", where, options, out)

    def short_volume(self, path: str, anonymous: str, text: str, out: dict[str, Any]) -> None:
        """`[SOURCE:]TARGET[:MODE]`, read as Compose reads it."""
        parts = text.split(":")
        if len(parts) > 3 or not all(parts):
            self.error(path, f"{text!r} is not [SOURCE:]TARGET[:MODE]")
            return
        source = parts[0] if len(parts) > 1 else None
        target = parts[1] if len(parts) > 1 else parts[0]
        readonly, nocopy = False, False
        for option in parts[2].split(",") if len(parts) == 3 else ():
            if option in ("ro", "rw"):
                readonly = option == "ro"
            elif option == "nocopy":
                nocopy = True
            else:
                reason = MOUNT_OPTIONS_NOTED.get(option, "Compose ignores it too")
                self.note(path, f"{option}: not carried over: {reason}")
        self.add_mount(path, source, target, readonly, out, anonymous=anonymous, nocopy=nocopy)

    def long_volume(
        self, path: str, anonymous: str, entry: Mapping[str, Any], out: dict[str, Any]
    ) -> None:
        for key in entry:
            if key not in MOUNT_KEYS and not str(key).startswith("x-"):
                self.error(f"{path}.{key}", f"{key!r} is not a key of a service's volume")
        kind = entry.get("type")
        if kind in MOUNT_TYPES_REFUSED:
            reason = MOUNT_TYPES_REFUSED[kind]
            self.error(f"{path}.type", f"a mount of type {kind} ({reason}) has no labfile form")
            return
        if kind not in ("volume", "bind", "tmpfs"):
            self.error(f"{path}.type", f"{kind!r}: a mount's type is volume, bind or tmpfs")
            return
        if "consistency" in entry:
            self.note(f"{path}.consistency", "not carried over: Docker for Mac's option")
        readonly = entry.get("read_only", False)
        if not isinstance(readonly, bool):
            self.error(f"{path}.read_only", "read_only is true or false")
            return
        own = {"volume": "volume", "bind": "bind", "tmpfs": "tmpfs"}[kind]
        for other in ("volume", "bind", "tmpfs"):
            if other != own and other in entry:
                self.error(f"{path}.{other}", f"{other} options are for a {other} mount")
        options = self.mapping(entry.get(own), f"{path}.{own}", f"{own} options")
        source = entry.get("source")
        if source is not None and not isinstance(source, str):
            self.error(f"{path}.source", "the source is a volume's name or a host path")
            return
        if kind == "tmpfs":
            if source is not None:
                self.error(f"{path}.source", "a tmpfs mount has no source")
                return
            size = options.get("size")
            text = "" if size is None else f"size={size}"
            for key in options:
                if key != "size":
                    self.note(f"{path}.tmpfs.{key}", "not carried over")
            self.tmpfs(path, anonymous, entry.get("target"), text, out, target_path=".target")
            return
        if kind == "bind" and source is None:
            self.error(f"{path}.source", "a bind mount needs a source: a path of the host")
            return
        if kind == "volume" and source is not None and _is_path(source):
            self.error(f"{path}.source", f"{source!r} is a path: write type: bind")
            return
        if kind == "bind" and not _is_path(source):
            self.error(f"{path}.source", f"{source!r} is not a path of the host")
            return
        if "subpath" in options:
            self.error(
                f"{path}.volume.subpath",
                "labmgr mounts a whole volume: mount it at a path and use its subfolder there",
            )
            return
        for key in options:
            if key not in ("nocopy", "create_host_path"):
                self.note(f"{path}.{own}.{key}", "not carried over")
        self.add_mount(
            path,
            source,
            entry.get("target"),
            readonly,
            out,
            anonymous=anonymous,
            nocopy=bool(options.get("nocopy")),
            field=".",
        )

    def add_mount(
        self,
        path: str,
        source: str | None,
        target: object,
        readonly: bool,
        out: dict[str, Any],
        *,
        anonymous: str,
        nocopy: bool = False,
        field: str = "",
    ) -> None:
        """One mount of a service; `field` is "." when the mount is a mapping, whose
        `source` and `target` are then named on their own."""
        spath = f"{path}.source" if field else path
        tpath = f"{path}.target" if field else path
        if source is not None and source.startswith((".", "~")):
            folder = (
                "in the home folder of whoever runs Compose"
                if source.startswith("~")
                else "beside the compose file, which is uploaded alone"
            )
            self.error(
                spath,
                f"{source!r} is a folder {folder}: mount a volume of the lab (it starts empty) "
                "or, as an admin, an absolute path of the host",
            )
            return
        if source is not None and source.startswith("/"):
            host = self.plain(source, spath)
            where = self.target(target, tpath, out)
            if host is None or where is None:
                return
            self.mount(out, where, host=host, readonly=readonly, origin=path)
            self.note(spath, f"{host} is a path of the host: mounting it is for admins only")
            return
        if source is None:
            name = self.volume(("anonymous", anonymous), anonymous)
        elif ("named", source) in self.volume_keys:
            name = self.volume_keys[("named", source)]
        else:
            if not any(e.path == f"volumes.{source}.external" for e in self.errors):
                self.error(
                    spath,
                    f"there is no volume {source!r} under volumes (Compose refuses it too); "
                    "declare it there",
                )
            return
        where = self.target(target, tpath, out)
        if where is None:
            return
        self.mount(out, where, volume=name, readonly=readonly, origin=path)
        empty = "" if nocopy else ": Docker first fills a new volume with the image's files there"
        if source is None:
            self.note(
                path,
                f"an anonymous volume: the lab's volume {name!r}, the node's own, "
                f"starting empty at {where}{empty}",
            )
        elif not nocopy:
            self.note(path, f"volume {name!r} starts empty at {where}{empty}")

    def tmpfs(
        self,
        path: str,
        base: str,
        target: object,
        options: str,
        out: dict[str, Any],
        target_path: str = "",
    ) -> None:
        where = self.target(target, f"{path}{target_path}", out)
        if where is None:
            return
        name = self.volume(("tmpfs", base), base)
        self.tmpfs_options(options, path, name)
        self.mount(out, where, volume=name, origin=path)
        self.note(path, f"the lab's volume {name!r}: {TMPFS_NOTE}")

    def volumes_from(self, services: Mapping[str, Any], nodes: dict[str, Any]) -> None:
        """`volumes_from: [SERVICE[:ro|rw]]`: the other service's volumes and host paths,
        at its paths (what the service mounts there itself wins), as Docker mounts them."""
        for key, service in services.items():
            raw = service.get("volumes_from") if isinstance(service, Mapping) else None
            if raw is None:
                continue
            path = f"services.{key}.volumes_from"
            if not isinstance(raw, list):
                self.error(path, "volumes_from is a list of services")
                continue
            node = nodes.get(labfile_name(str(key)))
            for index, entry in enumerate(raw):
                source, _, mode = str(entry).partition(":")
                if source == "container":
                    self.error(
                        f"{path}.{index}",
                        f"{entry!r} is a container outside the file; a node mounts what a "
                        "service of its own lab mounts",
                    )
                    continue
                other = nodes.get(labfile_name(source)) if source in self.services else None
                if source not in self.services:
                    self.error(f"{path}.{index}", f"{source!r} is not a service of this file")
                if other is None or node is None:
                    continue
                taken = {m["path"] for m in node.get("mounts", ())}
                for mount in other.get("mounts", ()):
                    tmpfs = mount.get("volume") in self.tmpfs_volumes()
                    if mount["path"] in taken or tmpfs:
                        continue
                    copied = dict(mount)
                    if mode in ("ro", "rw"):
                        copied.pop("readonly", None)
                        if mode == "ro":
                            copied["readonly"] = True
                    self.add_entry(node, copied, f"{path}.{index}")
                    what = mount.get("volume") or mount.get("host")
                    self.note(f"{path}.{index}", f"mounts {what} at {mount['path']}, as {source}")

    def tmpfs_volumes(self) -> set[str]:
        return {name for key, name in self.volume_keys.items() if key[0] == "tmpfs"}

    def read_network(self, key: str, network: Mapping[str, Any]) -> None:
        path = f"networks.{key}"
        for option in network:
            if option not in NETWORK_KEYS and not str(option).startswith("x-"):
                self.error(f"{path}.{option}", f"{option!r} is not a key of a network")
        if network.get("external"):
            self.error(
                f"{path}.external",
                "a lab makes its own networks; an external network is one labmgr cannot join",
            )
            return
        driver = network.get("driver", "bridge")
        if driver not in NETWORK_DRIVERS:
            self.error(f"{path}.driver", f"{driver!r}: use bridge, macvlan, ipvlan or overlay")
            return
        label = labfile_name(key)
        self.network_names[key] = label
        out: dict[str, Any] = {"driver": NETWORK_DRIVERS[driver]}
        ipam = self.mapping(network.get("ipam"), f"{path}.ipam", "ipam")
        configs = ipam.get("config", [])
        if not isinstance(configs, list):
            self.error(f"{path}.ipam.config", "config is a list of subnets")
            configs = []
        for index, config in enumerate(configs):
            cpath = f"{path}.ipam.config.{index}"
            entry = self.mapping(config, cpath, "an ipam config")
            subnet = entry.get("subnet")
            try:
                family = ipaddress.ip_network(str(subnet), strict=False).version
            except ValueError:
                self.error(f"{cpath}.subnet", f"{subnet!r} is not a subnet like 10.10.0.0/24")
                continue
            if family == 6:
                out["subnet6"] = str(subnet)
                self.version = 2
                if "gateway" in entry and driver == "bridge":
                    out["gateway6"] = str(entry["gateway"])
            else:
                out["subnet"] = str(subnet)
                if "gateway" in entry and driver == "bridge":
                    out["gateway"] = str(entry["gateway"])
            for extra in ("ip_range", "aux_addresses"):
                if extra in entry:
                    self.note(f"{cpath}.{extra}", "not carried over: labmgr assigns addresses")
        if network.get("internal"):
            out["internal"] = True
        if network.get("enable_ipv6") and "subnet6" not in out:
            self.error(f"{path}.enable_ipv6", "IPv6 needs an IPv6 subnet under ipam.config")
        options = self.mapping(network.get("driver_opts"), f"{path}.driver_opts", "driver_opts")
        if (mtu := options.get(MTU_OPTION)) is not None:
            try:
                out["mtu"] = int(str(mtu))
            except ValueError:
                self.error(f"{path}.driver_opts.{MTU_OPTION}", f"{mtu!r} is not an MTU")
        if driver in ("macvlan", "ipvlan"):
            parent = options.get("parent")
            if not isinstance(parent, str):
                self.error(f"{path}.driver_opts.parent", f"a {driver} network needs a parent")
            else:
                out["parent"] = f"host:{parent}"
                self.origins[f"networks.{label}.parent"] = f"{path}.driver_opts.parent"
                self.note(
                    f"{path}.driver_opts.parent", "a host interface as parent is for admins only"
                )
            mode = options.get(f"{driver}_mode")
            if mode is not None:
                out["mode"] = str(mode)
        if "subnet" not in out:
            out["subnet"] = self.free_subnet()
            self.note(path, f"no subnet given: {out['subnet']}, as Docker would choose one")
        self.networks[label] = out
        self.origins[f"networks.{label}"] = path

    def free_subnet(self) -> str:
        taken = [ipaddress.ip_network(n["subnet"]) for n in self.networks.values() if "subnet" in n]
        taken += self.declared
        for third in range(0, 256):
            candidate = ipaddress.IPv4Network(f"172.28.{third}.0/24")
            if not any(candidate.overlaps(other) for other in taken):
                return str(candidate)
        return "10.255.255.0/24"  # pragma: no cover

    def default_network(self) -> str:
        if DEFAULT_NETWORK not in self.networks:
            subnet = self.free_subnet()
            self.networks[DEFAULT_NETWORK] = {"driver": "bridge", "subnet": subnet}
            self.note(
                "services",
                f"services with no networks join the bridge network "
                f"{DEFAULT_NETWORK!r}, {subnet}, as in Compose",
            )
        return DEFAULT_NETWORK

    def read_service(
        self, path: str, label: str, service: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        for key in service:
            if key in NOTED_SERVICE_KEYS:
                self.note(f"{path}.{key}", f"not carried over: {NOTED_SERVICE_KEYS[key]}")
            elif key not in SERVICE_KEYS and not str(key).startswith("x-"):
                self.error(f"{path}.{key}", f"{key!r} is not a key of a service")
        out: dict[str, Any] = {}
        if isinstance(service.get("image"), str) and service["image"].strip():
            out["image"] = service["image"].strip()
            if "build" in service:
                self.note(f"{path}.build", "not carried over: the node runs the image")
        elif "build" in service:
            self.error(f"{path}.build", "labmgr does not build images; give the service an image")
        elif "image" in service:
            self.error(f"{path}.image", "the image must be a reference like alpine:3.20")
        else:
            self.error(path, "a service needs an image")
        for key, target in (("command", "command"), ("entrypoint", "entrypoint")):
            if key in service and service[key] is not None:
                words = self.words(service[key], f"{path}.{key}")
                if words is not None:
                    out[target] = words
        if "environment" in service:
            out["environment"] = self.environment(service["environment"], f"{path}.environment")
        for key, target in (("working_dir", "workdir"), ("user", "user"), ("hostname", "hostname")):
            if service.get(key) is not None:
                out[target] = str(service[key])
        if "container_name" in service:
            self.note(f"{path}.container_name", "a node is named after its service")
        if "sysctls" in service and (kept := self.sysctls(service["sysctls"], f"{path}.sysctls")):
            out["sysctls"] = kept
            self.version = 2
        if service.get("privileged"):
            out["privileged"] = True
        limits = self.limits(path, service)
        if limits:
            out["limits"] = limits
        self.service_networks(path, service, out)
        self.service_volumes(path, label, service, out)
        return out

    def words(self, value: object, path: str) -> list[str] | None:
        if isinstance(value, list) and all(isinstance(w, str | int | float) for w in value):
            return [str(w) for w in value]
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as bad:
                self.error(path, f"cannot split {value!r} as a shell would: {bad}")
                return None
        self.error(path, "a command is a string or a list of words")
        return None

    def environment(self, value: object, path: str) -> dict[str, str]:
        pairs: dict[str, str] = {}
        if isinstance(value, Mapping):
            for key, item in value.items():
                if item is None:
                    self.note(
                        f"{path}.{key}", "no value: taken from the shell in Compose; left out"
                    )
                else:
                    pairs[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                key, equals, text = str(item).partition("=")
                if equals:
                    pairs[key] = text
                else:
                    self.note(f"{path}.{index}", f"{key} has no value: left out")
        else:
            self.error(path, "environment is a list of KEY=VALUE or a mapping")
        return pairs

    def limits(self, path: str, service: Mapping[str, Any]) -> dict[str, Any]:
        limits: dict[str, Any] = {}
        deploy = self.mapping(service.get("deploy"), f"{path}.deploy", "deploy")
        resources = self.mapping(deploy.get("resources"), f"{path}.deploy.resources", "resources")
        wanted = self.mapping(resources.get("limits"), f"{path}.deploy.resources.limits", "limits")
        for key in deploy:
            if key != "resources":
                self.note(f"{path}.deploy.{key}", "not carried over")
        # Each limit two ways: the service's own key and deploy.resources.limits.
        for key, own, parse in (("memory", "mem_limit", parse_size), ("cpus", "cpus", _cpus)):
            for where, value in (
                (f"{path}.{own}", service.get(own)),
                (f"{path}.deploy.resources.limits.{key}", wanted.get(key)),
            ):
                if value is not None:
                    try:
                        limits[key] = parse(value)
                    except ValueError as bad:
                        self.error(where, str(bad))
        if service.get("memswap_limit") is not None:
            self.note(f"{path}.memswap_limit", "use limits.memory_swap (the swap alone)")
        pids = service.get("pids_limit", wanted.get("pids"))
        if pids is not None and pids != -1:  # -1 is Compose's "unlimited"
            if isinstance(pids, int) and not isinstance(pids, bool) and pids > 0:
                limits["pids"] = pids
            else:
                self.error(f"{path}.pids_limit", f"{pids!r} is not a number of processes")
        return limits

    def service_networks(self, path: str, service: Mapping[str, Any], out: dict[str, Any]) -> None:
        mode = service.get("network_mode")
        if mode is not None:
            if "networks" in service:
                self.error(
                    f"{path}.network_mode", "a service has network_mode or networks, not both"
                )
            elif mode in ("host", "none"):
                self.networks.setdefault(mode, {"driver": mode})
                self.origins.setdefault(f"networks.{mode}", f"{path}.network_mode")
                out["networks"] = {mode: {}}
                if mode == "host":
                    self.note(f"{path}.network_mode", "a host network is for admins only")
            elif mode == "bridge":
                out["networks"] = {self.default_network(): {}}
            elif isinstance(mode, str) and mode.startswith(("service:", "container:")):
                kind, _, target = mode.partition(":")
                if target not in self.services:
                    self.error(
                        f"{path}.network_mode",
                        f"{target!r} is not a service of this file: a node joins the network "
                        "namespace of a node of its own lab",
                    )
                    return
                out["network_mode"] = f"container:{labfile_name(target)}"
                self.version = 2
                if kind == "container":
                    self.note(f"{path}.network_mode", f"container:{target} read as the service")
            else:
                self.error(
                    f"{path}.network_mode",
                    f"{mode!r} is not host, none, bridge or service:NAME",
                )
            return
        joined = service.get("networks")
        if joined is None:
            out["networks"] = {self.default_network(): {}}
            return
        entries: list[tuple[str, Mapping[str, Any]]] = []
        if isinstance(joined, list):
            entries = [(str(n), {}) for n in joined]
        elif isinstance(joined, Mapping):
            entries = [
                (str(n), self.mapping(v, f"{path}.networks.{n}", "an attachment"))
                for n, v in joined.items()
            ]
        else:
            self.error(f"{path}.networks", "networks is a list or a mapping of network names")
        attachments: dict[str, Any] = {}
        for name, options in entries:
            npath = f"{path}.networks.{name}"
            if name == DEFAULT_NETWORK and name not in self.network_names:
                label = self.default_network()
            elif name not in self.network_names:
                if not any(e.path.startswith(f"networks.{name}") for e in self.errors):
                    self.error(npath, f"there is no network {name!r} under networks")
                continue
            else:
                label = self.network_names[name]
            attachment: dict[str, Any] = {}
            for key, value in options.items():
                if key == "ipv4_address":
                    attachment["ipv4"] = str(value)
                elif key == "ipv6_address":
                    attachment["ipv6"] = str(value)
                    self.version = 2
                elif key == "mac_address":
                    attachment["mac"] = str(value)
                elif key in ATTACHMENT_KEYS:
                    self.note(f"{npath}.{key}", "not carried over: a node is known by its name")
                else:
                    self.error(f"{npath}.{key}", f"{key!r} is not a key of a service's network")
            attachments[label] = attachment
        out["networks"] = attachments


def to_labfile(tree: Mapping[str, Any]) -> Imported:
    """The labfile tree of a compose file, with notes; LabfileError naming the compose
    file's own fields for what has no labfile form."""
    return _Importer(tree).run()
