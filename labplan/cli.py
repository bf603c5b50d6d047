"""The labplan command line: validate labfiles, print a lab's plan, print the schema.

    python -m labplan validate FILE...
    python -m labplan plan FILE [--deployment N] [--host-address HOST=IP ...] [--json]
    python -m labplan schema

Exit status: 0 when everything is valid, 1 when a labfile is invalid, 2 on a usage error
or a file that cannot be read. Problems are sentences, never tracebacks.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from labplan import naming
from labplan.codec import plan_to_dict
from labplan.compiler import compile_plan
from labplan.drivers import DRIVERS
from labplan.errors import LabfileError
from labplan.labfile import load
from labplan.model import Labfile
from labplan.render import render_plan, render_teardown_plan
from labplan.schema import json_schema

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


class _Unreadable(Exception):
    """A file that cannot be read; the message names it and says why."""


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args, out)
    except _Unreadable as unreadable:
        print(f"labplan: {unreadable}", file=sys.stderr)
        return EXIT_USAGE
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m labplan", description="Check labfiles and show the plans they compile to."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check labfiles, one line per file")
    validate.add_argument("files", nargs="+", metavar="FILE", help="a labfile, or - for stdin")
    validate.set_defaults(run=_validate)

    plan = commands.add_parser("plan", help="print the commands a lab's plan amounts to")
    plan.add_argument("file", metavar="FILE", help="a labfile, or - for stdin")
    plan.add_argument(
        "--deployment", type=_deployment_id, default=1, metavar="N", help="deployment id (1)"
    )
    plan.add_argument(
        "--host-address",
        type=_host_address,
        action="append",
        default=[],
        metavar="HOST=IP",
        help="a host's underlay address, for overlay networks spanning hosts",
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--teardown", action="store_true", help="print the teardown instead")
    plan.set_defaults(run=_plan)

    schema = commands.add_parser("schema", help="print the labfile JSON Schema")
    schema.set_defaults(run=_schema)
    return parser


def _deployment_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= naming.MAX_DEPLOYMENT:
        raise argparse.ArgumentTypeError(f"must be in 1..{naming.MAX_DEPLOYMENT}")
    return value


def _host_address(text: str) -> tuple[str, str]:
    host, sep, address = text.partition("=")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST=IP") from None
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST=IP")
    return host, address


def _read(name: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as error:
        raise _Unreadable(f"cannot read {name}: {error.strerror or error}") from None


def _load(name: str) -> Labfile:
    return load(_read(name), fmt=_FORMATS.get(Path(name).suffix.lower()))


def _print_errors(name: str, error: LabfileError, out: TextIO) -> None:
    for problem in error.errors:
        print(f"{name}: {problem}", file=out)


def _summary(lab: Labfile) -> str:
    def count(number: int, noun: str) -> str:
        return f"{number} {noun}{'' if number == 1 else 's'}"

    drivers = [d for d in DRIVERS if any(n.driver == d for n in lab.networks)]
    kinds = f" ({', '.join(drivers)})" if drivers else ""
    nodes, networks = count(len(lab.nodes), "node"), count(len(lab.networks), "network")
    return f"lab {lab.name}, {nodes}, {networks}{kinds}"


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    status = EXIT_OK
    for name in args.files:
        try:
            lab = _load(name)
        except LabfileError as error:
            _print_errors(name, error, out)
            status = EXIT_INVALID
        else:
            print(f"{name}: ok - {_summary(lab)}", file=out)
    return status


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    try:
        lab = _load(args.file)
        plan = compile_plan(lab, deployment=args.deployment, underlay=dict(args.host_address))
    except LabfileError as error:
        _print_errors(args.file, error, out)
        if any("underlay address" in e.message for e in error.errors):
            print("labplan: give each host's address with --host-address HOST=IP", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps(plan_to_dict(plan), indent=2), file=out)
    elif args.teardown:
        print(render_teardown_plan(plan), end="", file=out)
    else:
        print(render_plan(plan), end="", file=out)
    return EXIT_OK


def _schema(args: argparse.Namespace, out: TextIO) -> int:
    print(json.dumps(json_schema(), indent=2), file=out)
    return EXIT_OK
