"""Reading labfile text: YAML and JSON, and what the readers refuse."""

from __future__ import annotations

import json

import pytest
import yaml

from labplan.errors import LabfileError
from labplan.labfile import dump, load


def load_errors(text: str | bytes, fmt: str | None = None) -> list[str]:
    with pytest.raises(LabfileError) as raised:
        load(text, fmt=fmt)
    return [str(e) for e in raised.value.errors]


def test_it_loads_the_example_of_the_format_description(campus_yaml: str) -> None:
    lab = load(campus_yaml)
    assert lab.name == "campus"
    assert [n.name for n in lab.networks] == [
        "backbone",
        "core",
        "hostnet",
        "isolated",
        "l3",
        "lan",
        "wan",
    ]
    assert lab.node("web").attachment("backbone") is not None


def test_yaml_and_json_give_the_same_lab(campus_yaml: str) -> None:
    as_json = json.dumps(yaml.safe_load(campus_yaml))
    assert dump(load(as_json)) == dump(load(campus_yaml))
    assert dump(load(as_json, fmt="json")) == dump(load(campus_yaml, fmt="yaml"))


def test_it_reads_bytes_with_a_utf8_byte_order_mark(campus_yaml: str) -> None:
    assert load(b"\xef\xbb\xbf" + campus_yaml.encode()).name == "campus"


def test_it_refuses_a_file_larger_than_one_mebibyte() -> None:
    text = "labfile: 1\nname: big\ndescription: " + "x" * (1024 * 1024) + "\n"
    assert load_errors(text) == ["the file is larger than 1 MiB"]


def test_it_refuses_bytes_that_are_not_utf8() -> None:
    assert load_errors(b"name: \xff\xfe") == ["the file is not UTF-8 text"]


def test_it_refuses_text_with_lone_surrogates() -> None:
    assert load_errors("name: \udc80") == ["the file is not valid Unicode text"]


def test_it_refuses_a_lone_surrogate_escaped_in_json() -> None:
    text = '{"labfile": 1, "name": "x", "description": "\\ud800"}'
    assert load_errors(text) == [
        "description: the text is not valid Unicode (it holds a lone surrogate)"
    ]


def test_it_refuses_a_document_that_is_not_a_mapping() -> None:
    assert load_errors("- labfile\n- 1\n") == [
        "the document is a list, not a mapping of keys (labfile, name, networks, nodes)"
    ]
    assert load_errors('"lab"') == [
        'the document is "lab", not a mapping of keys (labfile, name, networks, nodes)'
    ]


def test_it_refuses_an_empty_file() -> None:
    assert load_errors("  \n") == ["the file is empty; a labfile starts with labfile: 1 and name"]


def test_it_reports_yaml_syntax_errors_with_their_line() -> None:
    (error,) = load_errors("labfile: 1\nname: [demo\n")
    assert error.startswith("YAML syntax error at line 3")


def test_it_reports_control_characters_yaml_does_not_allow() -> None:
    assert load_errors("name: a\x1fb") == [
        "YAML does not allow the control character #x1f (character 8)"
    ]


def test_it_reports_json_syntax_errors_with_their_line() -> None:
    (error,) = load_errors('{"labfile": 1,\n "name": }')
    assert error.startswith("JSON syntax error at line 2, column 10")


def test_it_refuses_yaml_anchors_and_aliases() -> None:
    bomb = 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n'
    assert load_errors(bomb) == ["YAML anchors (&name) are not supported (line 1, column 4)"]
    assert load_errors("labfile: 1\nname: *x\n") == [
        "YAML aliases (*name) are not supported (line 2, column 7)"
    ]


def test_it_reports_every_duplicate_key_in_yaml() -> None:
    text = "labfile: 1\nname: a\nname: b\nnetworks:\n  lan: {driver: host, driver: none}\n"
    assert load_errors(text) == [
        "name: the key name appears twice (line 3)",
        "networks.lan.driver: the key driver appears twice (line 5)",
    ]


def test_it_reports_every_duplicate_key_in_json() -> None:
    text = '{"labfile": 1, "name": "a", "name": "b", "nodes": {"x": {}, "x": {}}}'
    assert load_errors(text) == [
        "name: the key name appears twice",
        "nodes.x: the key x appears twice",
    ]


def test_it_refuses_keys_yaml_reads_as_booleans_or_numbers() -> None:
    text = "labfile: 1\nname: demo\nnetworks:\n  on: {driver: host}\n  80: {driver: none}\n"
    assert load_errors(text) == [
        'networks: the key on is read as true, not as text; quote it ("on") (line 4)',
        'networks: the key 80 is read as 80, not as text; quote it ("80") (line 5)',
    ]


def test_it_refuses_yaml_tags() -> None:
    (error,) = load_errors("labfile: 1\nname: !!binary ZGVtbw==\n")
    assert error == "name: the YAML tag tag:yaml.org,2002:binary is not supported (line 2)"


def test_it_refuses_nan_in_json() -> None:
    assert load_errors('{"labfile": NaN}') == ["JSON error: NaN is not a JSON number"]


def test_it_keeps_unquoted_macs_and_device_numbers_as_text() -> None:
    # YAML 1.1 would read both as base-60 integers.
    text = (
        "labfile: 1\nname: demo\nnetworks:\n  lan: {subnet: 10.0.0.0/24}\n"
        "nodes:\n  a:\n    limits: {io: [{device: 8:0, rbps: 1M}]}\n"
        "    networks: {lan: {mac: 02:42:00:00:00:10}}\n"
    )
    node = load(text).node("a")
    assert node.limits.io[0].device == "8:0"
    assert node.networks[0].mac == "02:42:00:00:00:10"


def test_it_refuses_an_unknown_format_name() -> None:
    with pytest.raises(ValueError, match="unknown labfile format 'toml'"):
        load("labfile: 1", fmt="toml")
