"""Labfile text to a plain tree (dicts, lists, scalars), refusing what YAML or JSON would
otherwise accept silently: duplicate keys, anchors and aliases (billion-laughs), tags,
non-string keys, files over 1 MiB, documents nested deeper than `MAX_DEPTH`, and base-60
numbers (`02:42:00:00:00:10` stays text).

Files of other tools (compose files, containerlab topologies) use anchors, aliases and
`<<` merge keys: `read(..., aliases=True)` expands them, refusing a document that
expands past `MAX_EXPANDED` values (a billion laughs stops there, not in memory).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None  # type: ignore[assignment,misc]

from labplan.errors import FieldError, LabfileError
from labplan.units import show_value

MAX_BYTES = 1024 * 1024
# A labfile's deepest field is five levels down (nodes.web.networks.lan.ipv4); past this
# bound a document is refused before anything walks it, so `[[[[...]]]]` in 1 MiB is a
# clear error and not a RecursionError in a parser or in the walks below.
MAX_DEPTH = 32
MAX_EXPANDED = 200_000
TOO_LARGE = f"the document expands to more than {MAX_EXPANDED:,} values through its aliases"
TOO_DEEP = f"the document is nested deeper than {MAX_DEPTH} levels"
FORMATS = ("yaml", "json")

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


class _Loader(yaml.SafeLoader):
    """SafeLoader without sexagesimal numbers and timestamps, and without aliases."""

    _depth = 0
    aliases = False

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # Refusing at compose time stops a billion-laughs document before it expands.
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if not self.aliases:
            _refuse_anchor(event)
        if self._depth >= MAX_DEPTH and isinstance(event, _COLLECTION_STARTS):
            raise _Refused(event.start_mark, TOO_DEEP)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML 1.1's plain scalars minus base-60 numbers, timestamps, merge keys and "=" values,
# which turn MAC addresses, device numbers and dates into something the user did not write.
_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
    list("yYnNtTfFoO"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


_COLLECTION_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)


class _Refused(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(f"{message} (line {mark.line + 1}, column {mark.column + 1})")


def _refuse_anchor(event: yaml.Event | None) -> None:
    if isinstance(event, yaml.AliasEvent):
        raise _Refused(event.start_mark, "YAML aliases (*name) are not supported")
    if event is not None and getattr(event, "anchor", None) is not None:
        raise _Refused(event.start_mark, "YAML anchors (&name) are not supported")


if CParser is not None:

    class _CLoader(CParser, SafeConstructor, Resolver):
        """libyaml's parser (about ten times faster) with `_Loader`'s scalar rules."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _CLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def _scan(text: str, *, aliases: bool) -> None:
    """libyaml composes in C, where `_Loader.compose_node` cannot look: scan the events
    first, which is cheap because nothing is built from them, refusing anchors and aliases
    unless they are allowed. The same scan bounds the nesting depth."""
    parser = CParser(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if not aliases:
                _refuse_anchor(event)
            if isinstance(event, _COLLECTION_STARTS):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Refused(event.start_mark, TOO_DEEP)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    finally:
        parser.dispose()


def _fail(message: str, path: str = "") -> LabfileError:
    return LabfileError([FieldError(path, message)])


def read(text: str | bytes, *, fmt: str | None = None, aliases: bool = False) -> object:
    """The tree in `text`; raises LabfileError with every duplicate key, or the first
    syntax problem. `aliases` expands YAML anchors, aliases and `<<` merge keys instead of
    refusing them."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown labfile format {fmt!r}; use yaml or json")
    try:
        raw = text.encode() if isinstance(text, str) else text
    except UnicodeEncodeError:
        raise _fail("the file is not valid Unicode text") from None
    if len(raw) > MAX_BYTES:
        raise _fail("the file is larger than 1 MiB")
    try:
        decoded = raw.decode("utf-8-sig") if isinstance(text, bytes) else text
    except UnicodeDecodeError:
        raise _fail("the file is not UTF-8 text") from None
    if fmt is None:
        fmt = "json" if decoded.lstrip().startswith(("{", "[")) else "yaml"
    errors: list[FieldError] = []
    tree = (
        _read_json(decoded, errors)
        if fmt == "json"
        else _read_yaml(decoded, errors, aliases=aliases)
    )
    if errors:
        raise LabfileError(errors)
    if tree is None:
        raise _fail("the file is empty; a labfile starts with labfile: 1 and name")
    if not isinstance(tree, dict):
        raise _fail(
            f"the document is {show_value(tree)}, not a mapping of keys "
            "(labfile, name, networks, nodes)"
        )
    return tree


# -- YAML ---------------------------------------------------------------------------


class _Walk:
    """What turning composed YAML nodes into values collects: the errors, and the values
    left before an aliased document counts as too large."""

    def __init__(self, loader: SafeConstructor, errors: list[FieldError], aliases: bool) -> None:
        self.loader = loader
        self.errors = errors
        self.aliases = aliases
        self.left = MAX_EXPANDED

    def count(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Refused(node.start_mark, TOO_LARGE)


def _read_yaml(text: str, errors: list[FieldError], *, aliases: bool = False) -> object:
    loader: _Loader | _CLoader
    try:
        if CParser is not None:
            _scan(text, aliases=aliases)
            loader = _CLoader(text)
        else:  # pragma: no cover - PyYAML built without libyaml
            loader = _Loader(text)
            loader.aliases = aliases
        node = loader.get_single_node()
        return None if node is None else _yaml_value(_Walk(loader, errors, aliases), node, "")
    except _Refused as refused:
        errors.append(FieldError("", str(refused)))
        return None
    except yaml.MarkedYAMLError as error:
        errors.append(FieldError("", _yaml_message(error)))
        return None
    except yaml.reader.ReaderError as error:
        code = error.character if isinstance(error.character, int) else ord(error.character)
        errors.append(
            FieldError(
                "",
                f"YAML does not allow the control character #x{code:02x} "
                f"(character {error.position + 1})",
            )
        )
        return None
    except yaml.YAMLError as error:  # pragma: no cover - every known kind is handled above
        errors.append(FieldError("", f"unreadable YAML: {error}"))
        return None


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = error.problem or error.context or "unreadable YAML"
    if problem == "exceeded maximum nesting depth":
        # libyaml's own bound (1,000 flow levels), met while it looks ahead of the events
        # the depth scan counts.
        return f"{TOO_DEEP} (line {mark.line + 1}, column {mark.column + 1})" if mark else TOO_DEEP
    if problem.startswith("but ") and error.context:
        problem = f"{error.context}, {problem}"
    return f"YAML syntax error{where}: {problem}"


def _yaml_value(walk: _Walk, node: yaml.Node, path: str) -> object:
    walk.count(node)
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
        return _yaml_mapping(walk, node, path)
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
        return [
            _yaml_value(walk, item, f"{path}.{i}" if path else str(i))
            for i, item in enumerate(node.value)
        ]
    if isinstance(node, yaml.ScalarNode) and node.tag in _PLAIN_TAGS:
        return walk.loader.construct_object(node)
    line = node.start_mark.line + 1
    walk.errors.append(FieldError(path, f"the YAML tag {node.tag} is not supported (line {line})"))
    return None


def _yaml_mapping(walk: _Walk, node: yaml.MappingNode, path: str) -> dict[str, object]:
    result: dict[str, object] = {}
    merged: dict[str, object] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if walk.aliases and _is_merge(key_node):
            _merge(walk, value_node, path, merged)
            continue
        key = (
            _yaml_value(walk, key_node, path) if isinstance(key_node, yaml.ScalarNode) else key_node
        )
        if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
            walk.errors.append(FieldError(path, _key_message(key, key_node, line)))
            continue
        child = f"{path}.{key}" if path else key
        if key in result:
            walk.errors.append(FieldError(child, f"the key {key} appears twice (line {line})"))
            continue
        result[key] = _yaml_value(walk, value_node, child)
    # YAML's merge: the mapping's own keys win over merged ones, earlier merges over later.
    return {**merged, **result} if merged else result


def _is_merge(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == "<<" and not node.style


def _merge(walk: _Walk, node: yaml.Node, path: str, into: dict[str, object]) -> None:
    """`<<: *base` or `<<: [*a, *b]` into `into`, keeping keys already there."""
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for source in sources:
        value = _yaml_value(walk, source, path)
        if not isinstance(value, dict):
            line = source.start_mark.line + 1
            walk.errors.append(FieldError(path, f"<< merges a mapping, not a value (line {line})"))
            continue
        for key, item in value.items():
            into.setdefault(key, item)


def _key_message(key: object, node: yaml.Node, line: int) -> str:
    if isinstance(node, yaml.ScalarNode) and isinstance(key, bool | int | float):
        return (
            f"the key {node.value} is read as {show_value(key)}, not as text; quote it "
            f'("{node.value}") (line {line})'
        )
    return f"a key must be a plain string (line {line})"


# -- JSON ---------------------------------------------------------------------------


class _JsonObject(dict[str, object]):
    """A JSON object that remembers which of its keys were repeated."""

    duplicates: list[str]


def _json_object(pairs: list[tuple[str, object]]) -> _JsonObject:
    result = _JsonObject()
    result.duplicates = []
    for key, value in pairs:
        if key in result:
            result.duplicates.append(key)
        else:
            result[key] = value
    return result


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _read_json(text: str, errors: list[FieldError]) -> object:
    try:
        tree = json.loads(text, object_pairs_hook=_json_object, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        errors.append(
            FieldError(
                "", f"JSON syntax error at line {error.lineno}, column {error.colno}: {error.msg}"
            )
        )
        return None
    except RecursionError:
        # json's C scanner gives up somewhere under the interpreter's recursion limit,
        # which is past MAX_DEPTH: the same sentence as a shallower deep document.
        errors.append(FieldError("", TOO_DEEP))
        return None
    except ValueError as error:
        errors.append(FieldError("", f"JSON error: {error}"))
        return None
    return _plain_json(tree, "", errors, 0)


def _plain_json(value: object, path: str, errors: list[FieldError], depth: int) -> object:
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        errors.append(FieldError("", TOO_DEEP))
        return None
    depth += 1
    if isinstance(value, _JsonObject):
        for key in value.duplicates:
            errors.append(
                FieldError(f"{path}.{key}" if path else key, f"the key {key} appears twice")
            )
        return {
            key: _plain_json(item, f"{path}.{key}" if path else key, errors, depth)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _plain_json(item, f"{path}.{i}" if path else str(i), errors, depth)
            for i, item in enumerate(value)
        ]
    return value
