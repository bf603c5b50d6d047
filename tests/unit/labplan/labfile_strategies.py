"""Hypothesis strategies that build valid labfile trees: every driver, static and
automatic addresses, limits, shaping, namespaces and routes."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

TEXT = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=5)
IMAGES = [
    "alpine",
    "frrouting/frr:v8.4.1",
    "docker.io/library/alpine:3.20",
    "registry.example:5000/team/router:v1@sha256:" + "ab" * 32,
]
NAMES = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6).map(lambda s: "n" + s)

SIZES = st.sampled_from(["4M", "256M", "1G", 8 * 1024**2, "6144K", 5000000])
RATES = st.sampled_from(["10mbit", "1500bit", 64000, "1.5gbit", "2kbit"])
TIMES = st.sampled_from(["20ms", "1s", "250us", "1.5ms"])


@st.composite
def shaping(draw: st.DrawFn) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if draw(st.booleans()):
        result["rate"] = draw(RATES)
    if draw(st.booleans()):
        result["delay"] = draw(TIMES)
        if draw(st.booleans()):
            result["jitter"] = draw(TIMES)
    if draw(st.booleans()):
        result["loss"] = draw(st.sampled_from(["0.5%", "10%", 0, 2.25, "100%"]))
    return result


@st.composite
def limits(draw: st.DrawFn) -> dict[str, Any]:
    options: dict[str, Any] = {
        "cpus": st.sampled_from([0.5, 1, 2.25, 1024]),
        "cpu_weight": st.integers(1, 10000),
        "memory": SIZES,
        "memory_swap": st.sampled_from([0, "1G", 4096]),
        "pids": st.integers(1, 4096),
        "io_weight": st.integers(1, 10000),
        "io": st.lists(
            st.fixed_dictionaries(
                {"rbps": SIZES}, optional={"wbps": SIZES, "riops": st.integers(1, 9999)}
            ),
            max_size=2,
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(options)), unique=True))
    result = {key: draw(options[key]) for key in chosen}
    for i, entry in enumerate(result.get("io", [])):
        entry["device"] = f"8:{i}"
    return result


@st.composite
def labfiles(draw: st.DrawFn) -> dict[str, Any]:
    """A valid labfile tree."""
    net_names = draw(st.lists(NAMES, min_size=1, max_size=7, unique=True))
    networks: dict[str, dict[str, Any]] = {}
    gateways: dict[str, str | None] = {}
    bridges: list[str] = []
    parents: dict[str, str] = {}  # parent -> the driver of its children
    ipvlan_modes: dict[str, str] = {}  # parent -> the mode of its ipvlan children
    for index, name in enumerate(net_names):
        driver = (
            "bridge"
            if not bridges
            else draw(st.sampled_from(["bridge", "overlay", "macvlan", "ipvlan", "host", "none"]))
        )
        network: dict[str, Any] = (
            {} if driver == "bridge" and draw(st.booleans()) else {"driver": driver}
        )
        if driver in ("host", "none"):
            networks[name] = network
            continue
        network["subnet"] = f"10.{index}.0.0/24"
        gateway: str | None = None
        if driver in ("bridge", "overlay"):
            choice = draw(st.sampled_from(["default", "none", "last"]))
            gateway = {"default": f"10.{index}.0.1", "none": None, "last": f"10.{index}.0.254"}[
                choice
            ]
            if choice != "default":
                network["gateway"] = "none" if gateway is None else gateway
        if driver == "bridge":
            bridges.append(name)
            if draw(st.booleans()):
                network["internal"] = draw(st.booleans())
        if driver in ("macvlan", "ipvlan"):
            # A parent carries children of one driver only (the kernel's rule).
            taken = {p for p, d in parents.items() if d != driver}
            free = [b for b in [*bridges, "host:dummy0"] if b not in taken]
            if not free:
                continue
            parent = network["parent"] = draw(st.sampled_from(free))
            parents[parent] = driver
            modes = ["bridge", "private", "vepa"] if driver == "macvlan" else ["l2", "l3", "l3s"]
            if driver == "ipvlan" and parent in ipvlan_modes:
                # ipvlan children of one parent share its mode.
                if ipvlan_modes[parent] != "l2":
                    network["mode"] = ipvlan_modes[parent]
            elif draw(st.booleans()):
                network["mode"] = draw(st.sampled_from(modes))
            if driver == "ipvlan":
                ipvlan_modes.setdefault(parent, network.get("mode", "l2"))
        if driver == "overlay" and draw(st.booleans()):
            network["vni"] = 100 + index
        if draw(st.booleans()):
            network["mtu"] = draw(st.integers(68, 9000))
        if draw(st.booleans()):
            network["shaping"] = draw(shaping())
        networks[name] = network
        gateways[name] = gateway

    addressed = [n for n in networks if n in gateways]
    exclusive = [n for n in networks if n not in gateways]
    nodes: dict[str, dict[str, Any]] = {}
    for node_index, node_name in enumerate(draw(st.lists(NAMES, max_size=6, unique=True))):
        node: dict[str, Any] = {}
        if exclusive and draw(st.booleans()):
            node["networks"] = {draw(st.sampled_from(exclusive)): {}}
        else:
            chosen = draw(st.lists(st.sampled_from(addressed), unique=True)) if addressed else []
            node["networks"] = {}
            for att_index, net in enumerate(chosen):
                attachment: dict[str, Any] = {}
                net_index = net_names.index(net)
                if draw(st.booleans()):
                    attachment["ipv4"] = f"10.{net_index}.0.{100 + node_index}"
                if draw(st.booleans()):
                    attachment["ifname"] = draw(st.sampled_from([f"eth{att_index + 1}", "wan0"]))
                driver = networks[net].get("driver", "bridge")
                if driver != "ipvlan" and draw(st.booleans()):
                    attachment["mac"] = f"02:00:00:00:{node_index:02x}:{att_index:02x}"
                node["networks"][net] = attachment
            _unique_ifnames(node["networks"])
            route_choice = draw(st.sampled_from(["default", "none", "gateway"]))
            if route_choice == "none":
                node["routes"] = []
            elif route_choice == "gateway" and chosen:
                net_index = net_names.index(chosen[0])
                node["routes"] = [
                    {"dst": "192.168.0.0/16", "via": f"10.{net_index}.0.250"},
                    {"dst": "0.0.0.0/0", "via": f"10.{net_index}.0.251"},
                ]
        if draw(st.booleans()):
            node["limits"] = draw(limits())
        if draw(st.booleans()):
            node["privileged"] = True
            node["namespaces"] = draw(
                st.fixed_dictionaries({}, optional={k: st.booleans() for k in ("pid", "user")})
            )
        if draw(st.booleans()):
            node["environment"] = draw(
                st.dictionaries(
                    st.from_regex(r"[A-Z_][A-Z0-9_]{0,5}", fullmatch=True),
                    st.one_of(TEXT, st.integers(0, 99)),
                    max_size=3,
                )
            )
        if draw(st.booleans()):
            node["command"] = draw(st.lists(TEXT, max_size=3))
        if draw(st.booleans()):
            node["hostname"] = "h" + node_name
        if draw(st.booleans()):
            node["host"] = draw(st.sampled_from(["local", "node-a"]))
        root = draw(st.sampled_from(["default", "rootfs", "image"]))
        if root == "rootfs":
            node["rootfs"] = "/srv/rootfs"
            node["workdir"] = "/app"
        elif root == "image":
            node["image"] = draw(st.sampled_from(IMAGES))
            if draw(st.booleans()):
                node["entrypoint"] = draw(st.lists(TEXT, max_size=2))
            if draw(st.booleans()):
                node["workdir"] = "/srv"
        if draw(st.booleans()):
            node["user"] = draw(st.sampled_from(["0", "app", "1000:1000", "app:staff"]))
        nodes[node_name] = node
    return {
        "labfile": 1,
        "name": "gen",
        "description": "generated",
        "networks": networks,
        "nodes": nodes,
    }


def _unique_ifnames(attachments: dict[str, dict[str, Any]]) -> None:
    seen: set[str] = set()
    for attachment in attachments.values():
        name = attachment.get("ifname")
        if name is not None and name in seen:
            del attachment["ifname"]
        elif name is not None:
            seen.add(name)
