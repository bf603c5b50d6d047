"""The `labmgr` command: labs on a labmgr server, and labfiles on this machine."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labcli.client import Client, CliError, load_credentials, save_credentials
from labplan import interop
from labplan.errors import LabfileError
from labplan.export import dumps
from labplan.labfile import validate

POLL_SECONDS = 1.0


def out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def client() -> Client:
    server, token = load_credentials()
    return Client(server, token)


def find_lab(api: Client, lab: str) -> dict[str, Any]:
    """The lab named `lab`, or with that id."""
    if lab.isdigit():
        found: dict[str, Any] = api.get(f"labs/{lab}")
        return found
    for item in api.pages("labs"):
        if item.get("name") == lab:
            return item
    raise CliError(f"lab: no lab is named {lab!r}.")


def latest_deployments(api: Client) -> dict[int, dict[str, Any]]:
    """Each lab's latest deployment, by lab id."""
    latest: dict[int, dict[str, Any]] = {}
    for item in api.pages("deployments"):
        lab = item.get("lab")
        if isinstance(lab, int) and (lab not in latest or item["id"] > latest[lab]["id"]):
            latest[lab] = item
    return latest


def lab_deployment(api: Client, lab: dict[str, Any]) -> dict[str, Any]:
    deployment = latest_deployments(api).get(lab["id"])
    if deployment is None:
        raise CliError(f"lab: {lab['name']!r} has never been deployed.")
    return deployment


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def read_file(name: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"file: cannot read {name}: {error}", 2) from None


def describe_lab(lab: dict[str, Any]) -> str:
    labfile = lab.get("labfile") or {}
    nodes = ", ".join(sorted(labfile.get("nodes", {}))) or "-"
    networks = ", ".join(sorted(labfile.get("networks", {}))) or "-"
    lines = [
        f"id:          {lab['id']}",
        f"name:        {lab['name']}",
        f"description: {lab.get('description') or ''}",
        f"owner:       {lab.get('owner', '')}",
        f"shared with: {', '.join(lab.get('shared_with') or []) or '-'}",
        f"nodes:       {nodes}",
        f"networks:    {networks}",
    ]
    return "\n".join(lines)


def print_steps(deployment: dict[str, Any], seen: set[int]) -> None:
    for step in deployment.get("steps") or []:
        if step["seq"] not in seen:
            seen.add(step["seq"])
            message = f": {step['message']}" if step.get("message") else ""
            out(f"  [{step['status']}] {step['name']}{message}")


def follow(api: Client, deployment: dict[str, Any], until: set[str]) -> int:
    """Print the deployment's steps until its status is one of `until`."""
    seen: set[int] = set()
    while True:
        print_steps(deployment, seen)
        if deployment["status"] in until:
            out(f"deployment {deployment['id']}: {deployment['status']}")
            return 0 if deployment["status"] != "failed" else 1
        time.sleep(POLL_SECONDS)
        deployment = api.get(f"deployments/{deployment['id']}")


# The commands.


def cmd_login(args: argparse.Namespace) -> int:
    user = args.user or input("User name: ")
    password = os.environ.get("LABMGR_PASSWORD") or getpass.getpass("Password: ")
    answer = Client(args.server).post("token", json={"username": user, "password": password})
    path = save_credentials(args.server, answer["token"])
    out(f"Logged in to {args.server} as {user}; token stored in {path}.")
    return 0


def cmd_labs(args: argparse.Namespace) -> int:
    api = client()
    labs = api.pages("labs")
    latest = latest_deployments(api)
    rows = [["ID", "NAME", "NODES", "DEPLOYMENT"]]
    for lab in labs:
        deployment = latest.get(lab["id"])
        nodes = len((lab.get("labfile") or {}).get("nodes", {}))
        rows.append(
            [str(lab["id"]), lab["name"], str(nodes), deployment["status"] if deployment else "-"]
        )
    out(table(rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    out(describe_lab(find_lab(client(), args.lab)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    text = read_file(args.file)
    params = {"format": args.format} if args.format else {}
    content_type = "application/json" if args.file.endswith(".json") else "application/yaml"
    lab = client().post(
        "labs/import",
        data=text.encode(),
        params=params,
        headers={"Content-Type": content_type},
    )
    out(f"Imported lab {lab['id']}: {lab['name']}")
    for note in lab.get("notes") or []:
        out(f"note: {note}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    api = client()
    lab = find_lab(api, args.lab)
    text = api.request("GET", f"labs/{lab['id']}/export", params={"format": args.format}).text
    emit(text, args.output)
    return 0


def emit(text: str, output: str | None) -> None:
    """`text` into the file `output`, or onto standard output without one."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        out(f"Wrote {output}.")
    else:
        out(text)


def cmd_validate(args: argparse.Namespace) -> int:
    tree = interop.to_labfile(read_file(args.file), "labfile").tree
    lab = validate(tree)
    out(f"{args.file}: valid labfile {lab.name!r}.")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    imported = interop.to_labfile(read_file(args.file), args.source)
    lab = validate(imported.tree)
    notes = list(imported.notes)
    if interop.format_name(args.to) == "labfile":
        text = dumps(lab, "yaml")
    else:
        exported = interop.from_labfile(lab, args.to)
        text, notes = exported.text, [*notes, *exported.notes]
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    emit(text, args.output)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    api = client()
    lab = find_lab(api, args.lab)
    deployment = api.post(f"labs/{lab['id']}/deploy")
    out(f"Deployment {deployment['id']} of {lab['name']}: {deployment['status']}")
    return (
        follow(api, deployment, {"running", "failed", "cancelled", "destroyed"}) if args.wait else 0
    )


def cmd_status(args: argparse.Namespace) -> int:
    api = client()
    deployment = lab_deployment(api, find_lab(api, args.lab))
    deployment = api.get(f"deployments/{deployment['id']}")
    out(f"deployment {deployment['id']}: {deployment['status']} on {deployment.get('host')}")
    print_steps(deployment, set())
    for node in deployment.get("nodes") or []:
        out(f"  node {node['name']}: pid {node.get('pid')}")
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    api = client()
    lab = find_lab(api, args.lab)
    deployment = api.post(f"labs/{lab['id']}/destroy")
    out(f"Destroying deployment {deployment['id']} of {lab['name']}: {deployment['status']}")
    return follow(api, deployment, {"destroyed", "failed", "cancelled"}) if args.wait else 0


def cmd_exec(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise CliError("CMD: name the command to run after `--`.", 2)
    api = client()
    deployment = lab_deployment(api, find_lab(api, args.lab))
    result = api.post(
        f"deployments/{deployment['id']}/exec", json={"node": args.node, "argv": argv}
    )
    sys.stdout.write(result.get("stdout", ""))
    sys.stderr.write(result.get("stderr", ""))
    return int(result.get("exit", 0))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="labmgr", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", help="get a token and store it")
    login.add_argument("--server", required=True, help="e.g. https://labmgr.example.org")
    login.add_argument("--user", help="user name (asked if not given)")
    login.set_defaults(run=cmd_login)

    commands.add_parser("labs", help="list the labs").set_defaults(run=cmd_labs)

    show = commands.add_parser("show", help="show a lab")
    show.add_argument("lab", metavar="LAB", help="name or id")
    show.set_defaults(run=cmd_show)

    imp = commands.add_parser("import", help="create a lab from a file")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--format", choices=["labfile", "containerlab", "compose"])
    imp.set_defaults(run=cmd_import)

    exp = commands.add_parser("export", help="write a lab as a file")
    exp.add_argument("lab", metavar="LAB")
    exp.add_argument(
        "--format", default="yaml", choices=["yaml", "json", "containerlab", "compose"]
    )
    exp.add_argument("-o", "--output", metavar="FILE")
    exp.set_defaults(run=cmd_export)

    val = commands.add_parser("validate", help="check a labfile, locally")
    val.add_argument("file", metavar="FILE")
    val.set_defaults(run=cmd_validate)

    conv = commands.add_parser("convert", help="convert between formats, locally")
    conv.add_argument("file", metavar="FILE")
    conv.add_argument("--from", dest="source", choices=["labfile", "containerlab", "compose"])
    conv.add_argument("--to", required=True, choices=["labfile", "containerlab", "compose"])
    conv.add_argument("-o", "--output", metavar="FILE")
    conv.set_defaults(run=cmd_convert)

    for name, run, text in (
        ("deploy", cmd_deploy, "deploy a lab"),
        ("destroy", cmd_destroy, "destroy a lab's deployments"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("lab", metavar="LAB")
        sub.add_argument("--wait", action="store_true", help="follow until it is done")
        sub.set_defaults(run=run)

    stat = commands.add_parser("status", help="a lab's latest deployment")
    stat.add_argument("lab", metavar="LAB")
    stat.set_defaults(run=cmd_status)

    ex = commands.add_parser("exec", help="run a command in a node")
    ex.add_argument("lab", metavar="LAB")
    ex.add_argument("node", metavar="NODE")
    ex.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD")
    ex.set_defaults(run=cmd_exec)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status: 0 done, 1 refused or invalid, 2 usage or connection."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    try:
        code: int = args.run(args)
    except CliError as error:
        sys.stderr.write(f"labmgr: {error}\n")
        return error.code
    except LabfileError as error:
        for field in error.errors:
            sys.stderr.write(f"{field}\n")
        return 1
    except ValueError as error:
        sys.stderr.write(f"labmgr: {error}\n")
        return 1
    except KeyboardInterrupt:
        return 2
    return code
