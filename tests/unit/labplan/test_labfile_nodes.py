"""Validation rules about nodes: names, process settings, limits, namespaces, attachments
and routes; and the document-level rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from labplan.labfile import validate

Errors = Callable[[object], list[str]]


def web(tree: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = tree["nodes"]["web"]
    return node


# -- the document -----------------------------------------------------------------


def test_it_requires_the_version_and_the_name(errors: Errors) -> None:
    assert errors({"networks": {}}) == ["labfile: labfile is required", "name: name is required"]


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (3, "version 3 is not supported; this labmgr reads versions 1 and 2"),
        ("1", '"1" is not a version number; write labfile: 2'),
        (True, "true is not a version number; write labfile: 2"),
    ],
)
def test_it_rejects_other_versions(
    tree: dict[str, Any], errors: Errors, version: object, message: str
) -> None:
    tree["labfile"] = version
    assert errors(tree) == [f"labfile: {message}"]


def test_it_rejects_an_unknown_top_level_key(tree: dict[str, Any], errors: Errors) -> None:
    tree["services"] = {}
    assert errors(tree) == [
        "services: unknown key (known keys: labfile, name, description, networks, nodes, links, "
        "volumes, scenarios)"
    ]


def test_it_rejects_a_lab_name_that_breaks_the_pattern(
    tree: dict[str, Any], errors: Errors
) -> None:
    tree["name"] = "My Lab"
    assert errors(tree) == [
        'name: "My Lab" is not a valid lab name (lower-case letters, digits and hyphens, '
        "starting with a letter, at most 40 characters)"
    ]


def test_it_rejects_a_description_that_is_not_text(tree: dict[str, Any], errors: Errors) -> None:
    tree["description"] = 42
    assert errors(tree) == ["description: 42 is not a string (quote it)"]


def test_it_reports_every_error_at_once_in_document_order(
    tree: dict[str, Any], errors: Errors
) -> None:
    tree["name"] = "Bad"
    tree["networks"]["lan"]["subnet"] = "10.10.0.0/33"
    web(tree)["limits"] = {"memory": "12Q", "pids": 0}
    tree["nodes"]["db"]["networks"]["dmz"] = {"ipv4": "10.20.0.0"}
    assert [e.split(":")[0] for e in errors(tree)] == [
        "name",
        "networks.lan.subnet",
        "nodes.web.limits.memory",
        "nodes.web.limits.pids",
        "nodes.db.networks.dmz.ipv4",
    ]


def test_it_rejects_more_than_a_thousand_nodes(tree: dict[str, Any], errors: Errors) -> None:
    tree["nodes"] = {f"n{i}": {} for i in range(1001)}
    assert errors(tree) == ["nodes: a lab has at most 1,000 nodes; this one has 1,001"]


def test_it_rejects_a_node_name_that_breaks_the_pattern(
    tree: dict[str, Any], errors: Errors
) -> None:
    tree["nodes"]["Web1"] = {}
    assert errors(tree) == [
        'nodes.Web1: "Web1" is not a valid node name (lower-case letters, digits and hyphens, '
        "starting with a letter, at most 31 characters)"
    ]


def test_it_rejects_an_unknown_node_key(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["volumes"] = ["/data"]
    (error,) = errors(tree)
    assert error.startswith("nodes.web.volumes: unknown key (known keys: host, hostname, rootfs,")


# -- process settings ---------------------------------------------------------------


def test_a_node_gets_every_default(tree: dict[str, Any]) -> None:
    node = validate(tree).node("web")
    assert (node.hostname, node.host, node.rootfs, node.command, node.workdir) == (
        "web",
        None,
        "host",
        (),
        "/",
    )
    assert (node.environment, node.privileged) == ({}, False)


def test_it_rejects_a_hostname_that_is_not_an_rfc1123_label(
    tree: dict[str, Any], errors: Errors
) -> None:
    web(tree)["hostname"] = "web-"
    tree["nodes"]["db"]["hostname"] = "db_1"
    assert errors(tree) == [
        'nodes.web.hostname: "web-" is not a valid hostname (letters, digits and inner hyphens, '
        "at most 63 characters)",
        'nodes.db.hostname: "db_1" is not a valid hostname (letters, digits and inner hyphens, '
        "at most 63 characters)",
    ]


def test_a_node_named_with_a_trailing_hyphen_keeps_its_name_as_hostname(
    tree: dict[str, Any],
) -> None:
    tree["nodes"]["edge-"] = {}
    assert validate(tree).node("edge-").hostname == "edge-"


@pytest.mark.parametrize(
    ("rootfs", "message"),
    [
        (
            "srv/rootfs",
            '"srv/rootfs" is not an absolute path (start it with /) (rootfs is "host" '
            "or an absolute directory)",
        ),
        (
            "/srv/../etc",
            '"/srv/../etc" contains a .. component (rootfs is "host" or an absolute directory)',
        ),
        (1, '1 is not a string (quote it) (rootfs is "host" or an absolute directory)'),
    ],
)
def test_it_rejects_a_rootfs_that_is_not_host_or_an_absolute_path(
    tree: dict[str, Any], errors: Errors, rootfs: object, message: str
) -> None:
    web(tree)["rootfs"] = rootfs
    assert errors(tree) == [f"nodes.web.rootfs: {message}"]


def test_it_rejects_a_relative_workdir(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["workdir"] = "app"
    assert errors(tree) == ['nodes.web.workdir: "app" is not an absolute path (start it with /)']


def test_it_requires_the_command_as_a_list(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["command"] = "python3 -m http.server"
    assert errors(tree) == [
        'nodes.web.command: "python3 -m http.server" is not a list (write the command as a list '
        'of arguments, like [python3, -m, http.server, "80"])'
    ]


def test_it_rejects_command_arguments_that_are_not_strings(
    tree: dict[str, Any], errors: Errors
) -> None:
    web(tree)["command"] = ["sleep", 10, "a\0b"]
    assert errors(tree) == [
        "nodes.web.command.1: 10 is not a string (quote it)",
        'nodes.web.command.2: "a\\u0000b" contains a NUL character',
    ]


def test_environment_numbers_become_strings(tree: dict[str, Any]) -> None:
    web(tree)["environment"] = {"PORT": 80, "RATIO": 0.5, "MODE": "demo"}
    assert validate(tree).node("web").environment == {"MODE": "demo", "PORT": "80", "RATIO": "0.5"}


def test_it_rejects_bad_environment_names_and_values(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["environment"] = {"1ST": "x", "DEBUG": True, "LIST": [1], "EMPTY": None}
    assert errors(tree) == [
        'nodes.web.environment.1ST: "1ST" is not a valid variable name (letters, digits and '
        "'_', not starting with a digit)",
        "nodes.web.environment.DEBUG: true is a boolean; quote it to make it a string",
        "nodes.web.environment.LIST: a list is not a string",
        "nodes.web.environment.EMPTY: null is not allowed here (remove the key to take the "
        "default)",
    ]


def test_it_rejects_a_host_name_with_spaces(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["host"] = "node a"
    assert errors(tree) == [
        "nodes.web.host: \"node a\" is not a valid host (letters, digits, '_', '.' and '-', at "
        "most 63 characters)"
    ]


# -- limits -------------------------------------------------------------------------


def test_limits_parse_into_plain_numbers(tree: dict[str, Any]) -> None:
    web(tree)["limits"] = {
        "cpus": 1.5,
        "cpu_weight": 200,
        "memory": "256M",
        "memory_swap": 0,
        "pids": 64,
        "io_weight": 50,
        "io": [{"device": "8:0", "rbps": "10M", "wiops": 100}],
    }
    limits = validate(tree).node("web").limits
    assert (limits.cpus, limits.cpu_weight, limits.memory, limits.memory_swap) == (
        1.5,
        200,
        256 * 1024**2,
        0,
    )
    assert (limits.pids, limits.io_weight) == (64, 50)
    assert [(t.device, t.rbps, t.wbps, t.riops, t.wiops) for t in limits.io] == [
        ("8:0", 10 * 1024**2, None, None, 100)
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cpus", 0, "0 is out of range: cpus must be more than 0 and at most 1024"),
        ("cpus", 2000, "2000 is out of range: cpus must be more than 0 and at most 1024"),
        ("cpus", "half", '"half" is not a number'),
        ("cpus", True, "true is a boolean, not a number"),
        ("cpu_weight", 0, "0 is out of range: cpu_weight must be between 1 and 10000"),
        ("cpu_weight", 1.5, "1.5 is not a whole number"),
        (
            "memory",
            "12Q",
            '"12Q" is not a size (use a number of bytes with an optional K, M or G '
            "suffix, like 256M)",
        ),
        ("memory", "1M", '"1M" is out of range: memory must be at least 4M'),
        ("memory", "1.5", '"1.5" is not a whole number of bytes'),
        (
            "memory_swap",
            -1,
            "-1 is not a size (use a number of bytes with an optional K, M or G suffix, like 256M)",
        ),
        ("pids", 0, "0 is out of range: pids must be between 1 and 4194304"),
        ("pids", True, "true is a boolean, not a whole number"),
        ("io_weight", 10001, "10001 is out of range: io_weight must be between 1 and 10000"),
        ("io", {"device": "8:0"}, "a mapping is not a list"),
        (
            "swap",
            1,
            "unknown key (known keys: cpus, cpu_weight, memory, memory_swap, pids, io_weight, io)",
        ),
    ],
)
def test_it_rejects_limits_that_do_not_parse_or_are_out_of_range(
    tree: dict[str, Any], errors: Errors, key: str, value: object, message: str
) -> None:
    web(tree)["limits"] = {key: value}
    assert errors(tree) == [f"nodes.web.limits.{key}: {message}"]


def test_it_rejects_io_throttles_without_a_throttle_or_with_a_bad_device(
    tree: dict[str, Any], errors: Errors
) -> None:
    web(tree)["limits"] = {
        "io": [
            {"device": "8:0"},
            {"device": "sda", "rbps": "1M"},
            {"rbps": "1M"},
            {"device": "8:0", "riops": 0},
            {"device": "8:0", "wiops": 5},
        ],
    }
    assert errors(tree) == [
        "nodes.web.limits.io.0: give at least one of rbps, wbps, riops, wiops for device 8:0",
        'nodes.web.limits.io.1.device: "sda" is not a valid device (write "MAJOR:MINOR", '
        'like "8:0")',
        "nodes.web.limits.io.2.device: device is required",
        "nodes.web.limits.io.3.riops: 0 is out of range: riops must be at least 1",
        "nodes.web.limits.io.4.device: device 8:0 is already throttled by nodes.web.limits.io.0",
    ]


# -- namespaces and privilege -------------------------------------------------------


def test_turning_a_namespace_off_needs_privileged(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["namespaces"] = {"pid": False, "user": False, "net": False}
    assert errors(tree) == [
        "nodes.web.namespaces.pid: turning the pid namespace off needs privileged: true",
        "nodes.web.namespaces.user: turning the user namespace off needs privileged: true",
        "nodes.web.namespaces.net: unknown key (known keys: mnt, uts, ipc, pid, cgroup, user)",
    ]


def test_a_privileged_node_has_no_user_namespace_by_default(tree: dict[str, Any]) -> None:
    web(tree).update(privileged=True, namespaces={"pid": False})
    ns = validate(tree).node("web").namespaces
    assert (ns.mnt, ns.uts, ns.ipc, ns.pid, ns.cgroup, ns.user) == (
        True,
        True,
        True,
        False,
        True,
        False,
    )


def test_namespaces_and_privileged_must_be_booleans(tree: dict[str, Any], errors: Errors) -> None:
    web(tree).update(privileged="no", namespaces={"uts": 0})
    assert errors(tree) == [
        'nodes.web.privileged: "no" is not true or false',
        "nodes.web.namespaces.uts: 0 is not true or false",
    ]


# -- attachments --------------------------------------------------------------------


def test_it_rejects_an_attachment_to_an_unknown_network(
    tree: dict[str, Any], errors: Errors
) -> None:
    web(tree)["networks"]["wan"] = {}
    assert errors(tree) == [
        "nodes.web.networks.wan: wan is not a network of this lab (networks: dmz, lan)"
    ]


def test_an_attachment_must_be_a_mapping(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["networks"] = {"lan": None}
    tree["nodes"]["db"]["networks"] = ["lan"]
    assert errors(tree) == [
        "nodes.web.networks.lan: null is not allowed here (remove the key to take the default)",
        "nodes.db.networks: a list is not a mapping of network name to attachment",
    ]


@pytest.mark.parametrize(
    ("ipv4", "message"),
    [
        ("10.20.0.5", "10.20.0.5 is not in the subnet 10.10.0.0/24"),
        ("10.10.0.0", "10.10.0.0 is the network address of 10.10.0.0/24"),
        ("10.10.0.255", "10.10.0.255 is the broadcast address of 10.10.0.0/24"),
        ("10.10.0.1", "10.10.0.1 is the gateway of lan"),
        (
            "10.10.0.5/24",
            '"10.10.0.5/24" is not an IPv4 address (give the bare address, like '
            "10.10.0.10; the prefix comes from the subnet)",
        ),
        ("10.10.0.256", '"10.10.0.256" is not an IPv4 address (like 10.10.0.10)'),
    ],
)
def test_it_rejects_a_static_address_that_cannot_be_a_node_of_the_subnet(
    tree: dict[str, Any], errors: Errors, ipv4: str, message: str
) -> None:
    web(tree)["networks"]["lan"] = {"ipv4": ipv4}
    assert errors(tree) == [f"nodes.web.networks.lan.ipv4: {message}"]


def test_it_rejects_a_static_address_used_twice_on_a_network(
    tree: dict[str, Any], errors: Errors
) -> None:
    web(tree)["networks"]["lan"] = {"ipv4": "10.10.0.9"}
    tree["nodes"]["db"]["networks"]["lan"] = {"ipv4": "10.10.0.9"}
    assert errors(tree) == [
        "nodes.db.networks.lan.ipv4: 10.10.0.9 is already the address of nodes.web on lan"
    ]


@pytest.mark.parametrize(
    ("ifname", "message"),
    [
        ("averyveryverylong0", '"averyveryverylong0" is longer than 15 bytes, the kernel\'s limit'),
        ("lo", '"lo" cannot be used as an interface name'),
        ("..", '".." cannot be used as an interface name'),
        ("eth 0", "\"eth 0\" is not an interface name (use letters, digits, '_', '.' and '-')"),
        ("eth/0", "\"eth/0\" is not an interface name (use letters, digits, '_', '.' and '-')"),
    ],
)
def test_it_rejects_an_invalid_interface_name(
    tree: dict[str, Any], errors: Errors, ifname: str, message: str
) -> None:
    web(tree)["networks"]["lan"] = {"ifname": ifname}
    assert errors(tree) == [f"nodes.web.networks.lan.ifname: {message}"]


def test_it_rejects_an_interface_name_used_twice_in_a_node(
    tree: dict[str, Any], errors: Errors
) -> None:
    tree["nodes"]["db"]["networks"] = {"lan": {"ifname": "net0"}, "dmz": {"ifname": "net0"}}
    assert errors(tree) == [
        "nodes.db.networks.dmz.ifname: net0 is already the interface of lan in this node"
    ]


@pytest.mark.parametrize(
    ("mac", "message"),
    [
        (
            "02:42:0a:0a:00",
            '"02:42:0a:0a:00" is not a MAC address (like 02:42:0a:0a:00:0a; quote it in YAML)',
        ),
        (
            "03:42:0a:0a:00:0a",
            "03:42:0a:0a:00:0a is a multicast MAC address; the first byte must be even",
        ),
        ("00:00:00:00:00:00", "00:00:00:00:00:00 is not a usable MAC address"),
    ],
)
def test_it_rejects_a_mac_that_is_not_a_unicast_address(
    tree: dict[str, Any], errors: Errors, mac: str, message: str
) -> None:
    web(tree)["networks"]["lan"] = {"mac": mac}
    assert errors(tree) == [f"nodes.web.networks.lan.mac: {message}"]


def test_it_rejects_a_mac_used_twice_in_the_lab(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["networks"]["lan"] = {"mac": "02:00:00:00:00:01"}
    tree["nodes"]["db"]["networks"]["dmz"] = {"mac": "02:00:00:00:00:01"}
    assert errors(tree) == [
        "nodes.db.networks.dmz.mac: 02:00:00:00:00:01 is already the MAC of nodes.web.networks.lan"
    ]


def test_it_rejects_a_static_mac_equal_to_an_automatic_one(
    tree: dict[str, Any], errors: Errors
) -> None:
    # db gets 10.10.0.2 on lan, hence 02:42:0a:0a:00:02.
    web(tree)["networks"]["lan"] = {"ipv4": "10.10.0.9", "mac": "02:42:0A:0A:00:02"}
    assert errors(tree) == [
        "nodes.web.networks.lan.mac: 02:42:0a:0a:00:02 is also the automatic MAC of nodes.db "
        "on lan; choose another"
    ]


def test_an_ipvlan_attachment_takes_no_mac(tree: dict[str, Any], errors: Errors) -> None:
    tree["networks"]["l2"] = {"driver": "ipvlan", "subnet": "10.30.0.0/24", "parent": "lan"}
    web(tree)["networks"] = {"l2": {"mac": "02:00:00:00:00:01"}}
    assert errors(tree) == ["nodes.web.networks.l2.mac: mac is not an option of the ipvlan driver"]


@pytest.mark.parametrize("driver", ["host", "none"])
def test_a_host_or_none_attachment_takes_no_address_ifname_or_mac(
    tree: dict[str, Any], errors: Errors, driver: str
) -> None:
    tree["networks"]["solo"] = {"driver": driver}
    tree["nodes"]["solo"] = {
        "networks": {"solo": {"ipv4": "10.0.0.1", "ifname": "eth0", "mac": "02:00:00:00:00:01"}}
    }
    assert errors(tree) == [
        f"nodes.solo.networks.solo.{key}: {key} is not an option of the {driver} driver"
        for key in ("ipv4", "ifname", "mac")
    ]


@pytest.mark.parametrize("driver", ["host", "none"])
def test_a_node_on_a_host_or_none_network_attaches_to_no_other(
    tree: dict[str, Any], errors: Errors, driver: str
) -> None:
    tree["networks"]["solo"] = {"driver": driver}
    web(tree)["networks"]["solo"] = {}
    assert errors(tree) == [
        f"nodes.web.networks: a node on the {driver} network solo attaches to no other network "
        "(it also lists lan)"
    ]


# -- routes -------------------------------------------------------------------------


def test_given_routes_replace_the_default_route(tree: dict[str, Any]) -> None:
    web(tree)["routes"] = [{"dst": "10.0.0.0/8", "via": "10.10.0.254"}]
    tree["nodes"]["db"]["routes"] = []
    lab = validate(tree)
    assert [(r.dst, r.via) for r in lab.node("web").routes] == [("10.0.0.0/8", "10.10.0.254")]
    assert lab.node("db").routes == ()


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            {"dst": "10.0.0.1/8", "via": "10.10.0.1"},
            "dst: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
        ),
        (
            {"dst": "default", "via": "10.10.0.1"},
            'dst: "default" is not a CIDR (write an IPv4 CIDR, like 10.10.0.0/24, or ::/0 for '
            "IPv6)",
        ),
        (
            {"dst": "0.0.0.0/0", "via": "10.20.0.1"},
            "via: 10.20.0.1 is not in a subnet this node is attached to (lan 10.10.0.0/24)",
        ),
        (
            {"dst": "0.0.0.0/0", "via": "10.10.0.255"},
            "via: 10.10.0.255 is the broadcast address of 10.10.0.0/24",
        ),
        ({"dst": "0.0.0.0/0"}, "via: via is required"),
        (
            {"dst": "0.0.0.0/0", "via": "10.10.0.1", "dev": "eth0"},
            "dev: unknown key (known keys: dst, via)",
        ),
    ],
)
def test_it_rejects_a_route_that_cannot_be_installed(
    tree: dict[str, Any], errors: Errors, route: dict[str, str], message: str
) -> None:
    web(tree)["routes"] = [route]
    assert errors(tree) == [f"nodes.web.routes.0.{message}"]


def test_it_rejects_a_destination_routed_twice(tree: dict[str, Any], errors: Errors) -> None:
    web(tree)["routes"] = [
        {"dst": "0.0.0.0/0", "via": "10.10.0.1"},
        {"dst": "0.0.0.0/0", "via": "10.10.0.2"},
    ]
    assert errors(tree) == [
        "nodes.web.routes.1.dst: 0.0.0.0/0 is already routed by nodes.web.routes.0"
    ]


def test_a_node_on_the_host_network_has_no_routes_of_its_own(
    tree: dict[str, Any], errors: Errors
) -> None:
    tree["networks"]["hostnet"] = {"driver": "host"}
    web(tree).update(networks={"hostnet": {}}, routes=[{"dst": "0.0.0.0/0", "via": "10.0.0.1"}])
    assert errors(tree) == [
        "nodes.web.routes: a node on the host network hostnet uses the host's routes; it "
        "cannot have its own"
    ]
