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
from labplan.labfile import admin_requirements, validate

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
        "labfile": 2,  # for its volume
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
                "mounts": [{"volume": "data", "path": "/var/lib/postgresql/data"}],
            },
        },
        "volumes": {"data": {}},
    }
    lab = validate(tree)
    assert {node.name for node in lab.nodes} == {"web", "db"}


def test_the_notes_name_what_is_dropped() -> None:
    _, notes = imported(SHOP)
    paths = {note.split(": ", 1)[0] for note in notes}
    assert {
        "name",
        "volumes.data",
        "services.web.ports",
        "services.web.restart",
        "services.web.depends_on",
        "services.web.environment.2",
        "services.web.networks.back.aliases",
        "services.db.volumes.0",
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
    assert list(written) == ["name", "services", "networks", "volumes"]
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


VOLUMES = """
name: wiki
services:
  db:
    image: postgres:16
    volumes:
      - db_data:/var/lib/postgresql/data
      - /srv/course/:/course:ro
      - /var/log/postgresql
      - type: tmpfs
        target: /var/cache
        tmpfs: {size: 32m, mode: 1777}
    tmpfs: [/run/postgresql, "/tmp:size=8m,mode=1777"]
  backup:
    image: alpine:3.20
    volumes_from: ["db:ro"]
    volumes: ["${BACKUP_VOLUME:-db_data}:/var/lib/postgresql/data:rw,z"]
volumes:
  db_data: {driver: local, labels: {course: web}}
"""


def test_volumes_host_paths_and_tmpfs_become_the_labs_volumes_and_mounts() -> None:
    tree, notes = imported(VOLUMES)
    assert tree["labfile"] == 2
    assert tree["volumes"] == {
        "db-data": {},
        "db-2": {},
        "db-3": {"size": 32 << 20},
        "db-tmpfs-0": {},
        "db-tmpfs-1": {"size": 8 << 20},
    }
    assert tree["nodes"]["db"]["mounts"] == [
        {"volume": "db-data", "path": "/var/lib/postgresql/data"},
        {"host": "/srv/course", "path": "/course", "readonly": True},
        {"volume": "db-2", "path": "/var/log/postgresql"},
        {"volume": "db-3", "path": "/var/cache"},
        {"volume": "db-tmpfs-0", "path": "/run/postgresql"},
        {"volume": "db-tmpfs-1", "path": "/tmp"},
    ]
    assert "volumes.db_data: 'db_data' is written 'db-data': a volume's name is [a-z][a-z0-9-]" in (
        notes
    )
    assert "services.db.volumes.1: /srv/course/ is written /srv/course" in notes
    assert (
        "services.db.volumes.1: /srv/course is a path of the host: mounting it is for admins only"
        in notes
    )
    assert any(
        n.startswith("services.db.volumes.2: an anonymous volume: the lab's volume 'db-2'")
        for n in notes
    )
    assert any(
        n.startswith("services.db.tmpfs.0: the lab's volume 'db-tmpfs-0': a tmpfs") for n in notes
    )
    assert "services.db.volumes.3.tmpfs.mode: not carried over" in notes
    assert (
        "services.db.tmpfs.1: mode=1777: not carried over: the volume's tmpfs takes its size"
        in (notes)
    )
    lab = validate(tree)
    db = next(n for n in lab.nodes if n.name == "db")
    assert db.mounts[1].host == "/srv/course" and db.mounts[1].readonly
    # The host path is the admin's to deploy: the labfile check names it, the import does not.
    assert {e.path for e in admin_requirements(lab)} == {
        "nodes.db.mounts.1.host",
        "nodes.backup.mounts.1.host",  # by volumes_from
    }


def test_volumes_from_mounts_the_other_services_volumes_and_host_paths() -> None:
    tree, notes = imported(VOLUMES)
    # Its own mount on a path wins; tmpfs mounts are not shared, as in Docker.
    assert tree["nodes"]["backup"]["mounts"] == [
        {"volume": "db-data", "path": "/var/lib/postgresql/data"},
        {"host": "/srv/course", "path": "/course", "readonly": True},
        {"volume": "db-2", "path": "/var/log/postgresql", "readonly": True},
    ]
    assert "services.backup.volumes_from.0: mounts db-2 at /var/log/postgresql, as db" in notes
    assert "services.backup.volumes.0: z: not carried over: SELinux labels are not set" in notes
    errors = refusals(
        """
        services:
          a: {image: alpine:3.20, volumes_from: [nobody, "container:other"]}
        """
    )
    assert set(errors) == {"services.a.volumes_from.0", "services.a.volumes_from.1"}


def test_mounts_with_no_labfile_form_are_refused_by_their_own_field() -> None:
    errors = refusals(
        """
        services:
          app:
            image: alpine:3.20
            volumes:
              - ./config:/etc/app
              - ../shared:/shared
              - ~/notes:/notes
              - logs:/var/log/app
              - data:relative/path
              - data:/etc
              - a:b:c:d
              - {type: bind, source: ./x, target: /x}
              - {type: volume, source: data, target: /y, volume: {subpath: sub}}
              - {type: npipe, source: pipe, target: /z}
              - {source: data, target: /w}
              - {type: tmpfs, source: data, target: /v}
              - data:/data
              - data:/data/
              - 7
            tmpfs: /run:size=lots
        volumes:
          data: {}
          outside: {external: true}
        """
    )
    assert set(errors) == {
        "services.app.volumes.0",
        "services.app.volumes.1",
        "services.app.volumes.2",
        "services.app.volumes.3",
        "services.app.volumes.4",
        "services.app.volumes.5",
        "services.app.volumes.6",
        "services.app.volumes.7.source",
        "services.app.volumes.8.volume.subpath",
        "services.app.volumes.9.type",
        "services.app.volumes.10.type",
        "services.app.volumes.11.source",
        "services.app.volumes.13",
        "services.app.volumes.14",
        "services.app.tmpfs",
        "volumes.outside.external",
    }
    assert "beside the compose file, which is uploaded alone" in errors["services.app.volumes.0"]
    assert "home folder" in errors["services.app.volumes.2"]
    assert errors["services.app.volumes.3"].startswith("there is no volume 'logs' under volumes")
    assert errors["services.app.volumes.13"] == "another mount of the node is already on /data"
    assert "cannot mount" in errors["volumes.outside.external"]


def test_a_mount_of_an_external_volume_is_refused_once_on_the_volume() -> None:
    errors = refusals(
        """
        services:
          app: {image: alpine:3.20, volumes: ["outside:/data"]}
        volumes:
          outside: {external: true}
        """
    )
    assert set(errors) == {"volumes.outside.external"}


def test_volumes_and_mounts_come_back_with_their_sizes() -> None:
    lab = validate(
        {
            "labfile": 2,
            "name": "vols",
            "description": "Imported from a compose file",
            "networks": {"lan": {"subnet": "10.70.0.0/24"}},
            "volumes": {"data": {"size": "64M"}, "cache": {}},
            "nodes": {
                "db": {
                    "image": "postgres:16",
                    "networks": {"lan": {}},
                    "mounts": [
                        {"volume": "data", "path": "/var/lib/postgresql/data"},
                        {"host": "/srv/course", "path": "/course", "readonly": True},
                    ],
                },
                "web": {
                    "image": "nginx:1.27",
                    "networks": {"lan": {}},
                    "mounts": [
                        {"volume": "data", "path": "/srv/data", "readonly": True},
                        {"volume": "cache", "path": "/var/cache/nginx"},
                    ],
                },
            },
        }
    )
    exported = from_labfile(lab, "compose")
    written = yaml.safe_load(exported.text)
    assert written["volumes"]["data"] == {
        "driver_opts": {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}
    }
    assert written["services"]["db"]["volumes"] == [
        "data:/var/lib/postgresql/data",
        "/srv/course:/course:ro",
    ]
    assert written["services"]["web"]["volumes"] == ["data:/srv/data:ro", "cache:/var/cache/nginx"]
    assert dump(validate(to_labfile(exported.text).tree)) == dump(lab)
