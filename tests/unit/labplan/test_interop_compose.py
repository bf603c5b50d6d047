"""Compose files in and out: what a compose user's file becomes, what is refused by the
compose file's own field names, and that an export reads back the same."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from labplan.errors import LabfileError
from labplan.export import dump
from labplan.interop import compose, from_labfile, to_labfile
from labplan.labfile import validate

SHOP = textwrap.dedent(
    """
    name: My_Shop
    x-common: &common
      restart: unless-stopped
    services:
      web:
        <<: *common
        image: nginx:1.27
        command: nginx -g 'daemon off;'
        environment: [MODE=prod, "GREETING=hello world", DEBUG]
        mem_limit: 512m
        cpus: 0.5
        ports: ["8080:80"]
        depends_on: [db]
        networks:
          front: {ipv4_address: 10.10.0.10}
          back: {ipv4_address: 10.20.0.10, aliases: [www]}
      db:
        image: postgres:16
        environment: {POSTGRES_PASSWORD: secret, POSTGRES_DB: shop}
        deploy: {resources: {limits: {memory: 1g, cpus: "1.5"}}}
        pids_limit: 200
        volumes: [data:/var/lib/postgresql/data]
        networks:
          back: {ipv4_address: 10.20.0.20}
    networks:
      front:
        ipam: {config: [{subnet: 10.10.0.0/24, gateway: 10.10.0.1}]}
      back:
        internal: true
        ipam: {config: [{subnet: 10.20.0.0/24}]}
    volumes: {data: {}}
    """
)


def imported(text: str) -> tuple[dict[str, Any], list[str]]:
    result = to_labfile(text, "compose")
    return result.tree, [str(note) for note in result.notes]


def refusals(text: str) -> dict[str, str]:
    with pytest.raises(LabfileError) as caught:
        to_labfile(textwrap.dedent(text), "compose")
    return {error.path: error.message for error in caught.value.errors}


def test_a_shop_becomes_the_expected_labfile() -> None:
    tree, _ = imported(SHOP)
    assert tree == {
        "labfile": 1,
        "name": "my-shop",
        "description": "Imported from a compose file",
        "networks": {
            "front": {"driver": "bridge", "subnet": "10.10.0.0/24", "gateway": "10.10.0.1"},
            "back": {"driver": "bridge", "subnet": "10.20.0.0/24", "internal": True},
        },
        "nodes": {
            "web": {
                "image": "nginx:1.27",
                "command": ["nginx", "-g", "daemon off;"],
                "environment": {"MODE": "prod", "GREETING": "hello world"},
                "limits": {"memory": 512 << 20, "cpus": 0.5},
                "networks": {"front": {"ipv4": "10.10.0.10"}, "back": {"ipv4": "10.20.0.10"}},
            },
            "db": {
                "image": "postgres:16",
                "environment": {"POSTGRES_PASSWORD": "secret", "POSTGRES_DB": "shop"},
                "limits": {"memory": 1 << 30, "cpus": 1.5, "pids": 200},
                "networks": {"back": {"ipv4": "10.20.0.20"}},
            },
        },
    }
    lab = validate(tree)
    assert {node.name for node in lab.nodes} == {"web", "db"}


def test_the_notes_name_what_is_dropped() -> None:
    _, notes = imported(SHOP)
    paths = {note.split(": ", 1)[0] for note in notes}
    assert {
        "name",
        "volumes",
        "services.web.ports",
        "services.web.restart",
        "services.web.depends_on",
        "services.web.environment.2",
        "services.web.networks.back.aliases",
        "services.db.volumes",
    } <= paths
    assert any("ports" in n and "terminal" in n for n in notes)
    assert "services.web.environment.2: DEBUG has no value: left out" in notes


def test_services_without_networks_join_a_default_bridge() -> None:
    tree, _ = imported(
        """
        services:
          a: {image: alpine:3.20, command: [sleep, infinity], x-team: blue}
          b: {image: alpine:3.20}
        """
    )
    assert tree["name"] == "compose"
    assert set(tree["networks"]) == {"default"}
    assert tree["networks"]["default"]["driver"] == "bridge"
    assert tree["nodes"]["a"] == {
        "image": "alpine:3.20",
        "command": ["sleep", "infinity"],
        "networks": {"default": {}},
    }
    validate(tree)


def test_a_network_without_subnet_gets_a_free_one_with_a_note() -> None:
    tree, notes = imported(
        """
        services:
          a: {image: alpine:3.20, networks: [one, two]}
        networks:
          one: {}
          two:
            ipam: {config: [{subnet: 172.28.0.0/24}]}
        """
    )
    chosen = tree["networks"]["one"]["subnet"]
    assert chosen != "172.28.0.0/24"
    assert f"networks.one: no subnet given: {chosen}, as Docker would choose one" in notes
    assert list(tree["nodes"]["a"]["networks"]) == ["one", "two"]
    validate(tree)


def test_ipv6_makes_a_version_2_labfile() -> None:
    tree, _ = imported(
        """
        services:
          a:
            image: alpine:3.20
            networks: {lan: {ipv4_address: 10.1.0.5, ipv6_address: "fd00:1::5"}}
        networks:
          lan:
            enable_ipv6: true
            ipam: {config: [{subnet: 10.1.0.0/24}, {subnet: "fd00:1::/64"}]}
        """
    )
    assert tree["labfile"] == 2
    assert tree["networks"]["lan"]["subnet6"] == "fd00:1::/64"
    assert tree["nodes"]["a"]["networks"]["lan"] == {"ipv4": "10.1.0.5", "ipv6": "fd00:1::5"}
    validate(tree)


def test_host_none_and_macvlan_networks() -> None:
    tree, notes = imported(
        """
        services:
          probe: {image: alpine:3.20, network_mode: host, privileged: true}
          quiet: {image: alpine:3.20, network_mode: none}
          edge: {image: alpine:3.20, networks: [outside]}
        networks:
          outside:
            driver: macvlan
            driver_opts: {parent: eth0, macvlan_mode: bridge}
            ipam: {config: [{subnet: 192.168.50.0/24}]}
        """
    )
    assert tree["networks"]["host"] == {"driver": "host"}
    assert tree["networks"]["none"] == {"driver": "none"}
    assert tree["networks"]["outside"] == {
        "driver": "macvlan",
        "subnet": "192.168.50.0/24",
        "parent": "host:eth0",
        "mode": "bridge",
    }
    assert tree["nodes"]["probe"]["privileged"] is True
    assert tree["nodes"]["probe"]["networks"] == {"host": {}}
    assert any(n.startswith("networks.outside.driver_opts.parent: ") for n in notes)
    validate(tree)


def test_service_names_are_sanitized_and_collisions_refused() -> None:
    tree, notes = imported("services:\n  Web_Server.1: {image: alpine:3.20}\n")
    assert list(tree["nodes"]) == ["web-server-1"]
    assert any(n.startswith("services.Web_Server.1: ") for n in notes)
    errors = refusals(
        """
        services:
          web_a: {image: alpine:3.20}
          web.a: {image: alpine:3.20}
        """
    )
    assert "services.web.a" in errors
    assert "web-a" in errors["services.web.a"]


def test_every_refusal_names_its_path_all_at_once() -> None:
    errors = refusals(
        """
        version: "3.8"
        services:
          built: {build: .}
          shared: {image: alpine:3.20, network_mode: "service:nobody"}
          odd: {image: alpine:3.20, command: 42, mem_limit: lots, environment: 7}
          lost: {image: alpine:3.20, networks: [nowhere]}
          typo: {image: alpine:3.20, imgae: x}
        networks:
          outside: {external: true}
          weird: {driver: weave}
        frobnicate: {}
        """
    )
    assert set(errors) == {
        "services.built.build",
        "services.shared.network_mode",
        "services.odd.command",
        "services.odd.mem_limit",
        "services.odd.environment",
        "services.lost.networks.nowhere",
        "services.typo.imgae",
        "networks.outside.external",
        "networks.weird.driver",
        "frobnicate",
    }
    assert "build" in errors["services.built.build"]
    assert "'nobody' is not a service of this file" in errors["services.shared.network_mode"]


def test_wrong_shapes_are_errors_not_exceptions() -> None:
    assert set(refusals("services: [a, b]\n")) == {"services"}
    assert set(refusals("services:\n  a: 3\n")) == {"services.a"}
    errors = refusals("services:\n  a: {image: alpine:3.20}\nnetworks: [x]\n")
    assert set(errors) == {"networks"}


def test_build_with_an_image_is_noted_not_refused() -> None:
    tree, notes = imported("services:\n  a: {image: app:1, build: ./app}\n")
    assert tree["nodes"]["a"]["image"] == "app:1"
    assert any(n.startswith("services.a.build: ") for n in notes)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 << 20), ("1g", 1 << 30), ("1gb", 1 << 30), ("64k", 64 << 10), (1000, 1000)],
)
def test_compose_sizes(text: object, size: int) -> None:
    assert compose.parse_size(text) == size


def test_round_trip_reads_back_the_same_lab() -> None:
    found = to_labfile(SHOP)  # told by its services key
    assert found.source == "compose"
    lab = validate(found.tree)
    exported = from_labfile(lab, "compose")
    written = yaml.safe_load(exported.text)
    assert list(written) == ["name", "services", "networks"]
    assert written["services"]["web"]["networks"]["front"]["ipv4_address"] == "10.10.0.10"
    assert written["networks"]["back"]["internal"] is True
    again = to_labfile(exported.text)
    assert again.source == "compose"
    assert dump(validate(again.tree)) == dump(lab)


def test_round_trip_with_host_and_ipv6() -> None:
    tree, _ = imported(
        """
        name: dual
        services:
          probe: {image: alpine:3.20, network_mode: host}
          a:
            image: alpine:3.20
            user: "1000"
            working_dir: /srv
            entrypoint: ["/bin/sh", "-c"]
            command: ["sleep infinity"]
            networks: {lan: {ipv6_address: "fd00:1::5", mac_address: "02:00:00:00:00:05"}}
        networks:
          lan:
            ipam: {config: [{subnet: 10.1.0.0/24}, {subnet: "fd00:1::/64", gateway: "fd00:1::1"}]}
        """
    )
    lab = validate(tree)
    assert tree["networks"]["lan"]["gateway6"] == "fd00:1::1"
    exported = from_labfile(lab, "compose")
    assert yaml.safe_load(exported.text)["services"]["probe"]["network_mode"] == "host"
    assert dump(validate(to_labfile(exported.text).tree)) == dump(lab)


def test_export_notes_what_compose_cannot_hold() -> None:
    lab = validate(
        {
            "labfile": 2,
            "name": "triangle",
            "networks": {"lan": {"subnet": "10.10.0.0/24", "impairments": {"delay": "20ms"}}},
            "nodes": {
                "r1": {
                    "image": "alpine:3.20",
                    "networks": {"lan": {"impairments": {"loss": "2%"}}},
                    "exec": [["ip", "link"]],
                },
                "r2": {"image": "alpine:3.20"},
            },
            "links": [
                {
                    "endpoints": ["r1:eth1", "r2:eth1"],
                    "impairments": {"delay": "10ms"},
                }
            ],
        }
    )
    exported = from_labfile(lab, "compose")
    paths = {note.path for note in exported.notes}
    assert {
        "links.0",
        "networks.lan.impairments",
        "nodes.r1.networks.lan.impairments",
        "nodes.r1.exec",
    } <= paths
    assert "links" not in yaml.safe_load(exported.text)


def test_variables_are_read_as_compose_reads_them_unset() -> None:
    tree, notes = imported(
        """
        services:
          a:
            image: "alpine:${TAG:-3.20}"
            pids_limit: -1
            environment:
              - B=${UNSET}
              - PRICE=$$5
        """
    )
    assert tree["nodes"]["a"]["image"] == "alpine:3.20"
    assert tree["nodes"]["a"]["environment"] == {"B": "", "PRICE": "$5"}
    assert "limits" not in tree["nodes"]["a"]
    assert "services.a.environment.0: ${UNSET} is not set: read as empty" in notes


def test_a_service_in_anothers_network_namespace_comes_and_goes_as_network_mode() -> None:
    tree, notes = imported(
        """
        name: pod
        services:
          app: {image: nginx:1.27}
          side: {image: alpine:3.20, network_mode: "service:app"}
          other: {image: alpine:3.20, network_mode: "container:app"}
        """
    )
    assert tree["labfile"] == 2
    assert tree["nodes"]["side"]["network_mode"] == "container:app"
    assert "networks" not in tree["nodes"]["side"]
    assert "services.other.network_mode: container:app read as the service" in notes
    lab = validate(tree)
    exported = from_labfile(lab, "compose")
    assert yaml.safe_load(exported.text)["services"]["side"]["network_mode"] == "service:app"
    assert dump(validate(to_labfile(exported.text).tree)) == dump(lab)
    assert refusals(
        """
        services:
          side: {image: alpine:3.20, network_mode: "service:gone"}
        """
    ) == {
        "services.side.network_mode": "'gone' is not a service of this file: a node joins the"
        " network namespace of a node of its own lab"
    }
