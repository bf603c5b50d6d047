"""The `labmgr` command: labs on a labmgr server, and labfiles on this machine."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labcli import completion, graph
from labcli.client import Client, CliError, load_credentials, load_user, save_credentials
from labplan import interop
from labplan.errors import LabfileError
from labplan.export import dumps
from labplan.labfile import validate

POLL_SECONDS = 1.0
FINAL = {"running", "failed", "cancelled", "destroyed"}
# A LAB argument naming a file of one of these is a file to deploy (any of the formats).
FILE_SUFFIXES = (".yaml", ".yml", ".json")


def out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def out_json(value: object) -> None:
    out(json.dumps(value, indent=2))


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


def step_line(step: dict[str, Any], times: bool = False) -> str:
    message = f": {step['message']}" if step.get("message") else ""
    took = f" ({step['seconds']:.1f} s)" if times and step.get("seconds") is not None else ""
    when = f"{step['created']}  " if times and step.get("created") else ""
    return f"  {when}[{step['status']}] {step['name']}{message}{took}"


def print_steps(deployment: dict[str, Any], seen: set[int], times: bool = False) -> None:
    for step in deployment.get("steps") or []:
        if step["seq"] not in seen:
            seen.add(step["seq"])
            out(step_line(step, times))


def follow(api: Client, deployment: dict[str, Any], until: set[str], times: bool = False) -> int:
    """Print the deployment's steps until its status is one of `until`; the exit status
    by its outcome: 0 when it got there, 1 when it failed or was cancelled."""
    seen: set[int] = set()
    while True:
        print_steps(deployment, seen, times)
        if deployment["status"] in until:
            out(f"deployment {deployment['id']}: {deployment['status']}")
            return 1 if deployment["status"] in ("failed", "cancelled") else 0
        time.sleep(POLL_SECONDS)
        deployment = api.get(f"deployments/{deployment['id']}")


# The commands.


def cmd_login(args: argparse.Namespace) -> int:
    user = args.user or input("User name: ")
    password = os.environ.get("LABMGR_PASSWORD") or getpass.getpass("Password: ")
    answer = Client(args.server).post("token", json={"username": user, "password": password})
    path = save_credentials(args.server, answer["token"], user)
    out(f"Logged in to {args.server} as {user}; token stored in {path}.")
    return 0


def cmd_labs(args: argparse.Namespace) -> int:
    api = client()
    labs = api.pages("labs")
    latest = latest_deployments(api)
    listed = []
    for lab in labs:
        deployment = latest.get(lab["id"])
        listed.append(
            {
                "id": lab["id"],
                "name": lab["name"],
                "owner": lab.get("owner"),
                "nodes": len((lab.get("labfile") or {}).get("nodes", {})),
                "deployment": deployment["id"] if deployment else None,
                "status": deployment["status"] if deployment else None,
            }
        )
    if args.format == "json":
        out_json(listed)
        return 0
    rows = [["ID", "NAME", "NODES", "DEPLOYMENT"]]
    for item in listed:
        rows.append([str(item["id"]), item["name"], str(item["nodes"]), item["status"] or "-"])
    out(table(rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    api = client()
    lab = find_lab(api, args.lab)
    latest = latest_deployments(api).get(lab["id"])
    deployment = api.get(f"deployments/{latest['id']}") if latest else None
    if args.format == "json":
        out_json({"lab": lab, "deployment": deployment})
        return 0
    out(describe_lab(lab))
    if deployment is None:
        out("deployment:  -")
        return 0
    hosts = ", ".join(deployment.get("hosts") or []) or deployment.get("host") or "-"
    out(f"deployment:  {deployment['id']}, {deployment['status']} on {hosts}")
    for node in deployment.get("nodes") or []:
        out(f"  node {node['name']}: pid {node.get('pid')} on {node.get('host') or '-'}")
        for interface in node.get("interfaces") or []:
            addresses = " ".join(interface.get("addresses") or []) or "no address"
            out(f"    {interface.get('ifname')}: {addresses}")
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
    if os.path.isfile(args.lab) or args.lab.endswith(FILE_SUFFIXES):
        lab = lab_from_file(api, args.lab, args.source)
    else:
        if args.source:
            raise CliError("--format: only a FILE to deploy has a format.", 2)
        lab = find_lab(api, args.lab)
    deployment = api.post(f"labs/{lab['id']}/deploy")
    out(f"Deployment {deployment['id']} of {lab['name']}: {deployment['status']}")
    return 0 if args.detach else follow(api, deployment, FINAL)


def lab_from_file(api: Client, path: str, source: str | None) -> dict[str, Any]:
    """The user's lab of the name the file gives, made or updated from the file (a
    labfile, containerlab topology or compose file, converted here as the server would)."""
    imported = interop.to_labfile(read_file(path), source)
    for note in imported.notes:
        sys.stderr.write(f"note: {note}\n")
    tree = imported.tree
    name = tree.get("name")
    user = load_user()
    mine = [
        lab
        for lab in api.pages("labs")
        if lab.get("name") == name and (user is None or lab.get("owner") == user)
    ]
    if len(mine) == 1:
        lab: dict[str, Any] = api.request(
            "PUT", f"labs/{mine[0]['id']}", json={"labfile": tree}
        ).json()
        out(f"Updated lab {lab['id']}: {lab['name']}, from {path}")
    else:
        lab = api.post("labs", json={"labfile": tree})
        out(f"Created lab {lab['id']}: {lab['name']}, from {path}")
    return lab


def cmd_status(args: argparse.Namespace) -> int:
    api = client()
    deployment = lab_deployment(api, find_lab(api, args.lab))
    deployment = api.get(f"deployments/{deployment['id']}")
    if args.format == "json":
        out_json(deployment)
        return 0
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
    return 0 if args.detach else follow(api, deployment, {"destroyed", "failed", "cancelled"})


def cmd_logs(args: argparse.Namespace) -> int:
    api = client()
    lab = find_lab(api, args.lab)
    deployment = api.get(f"deployments/{lab_deployment(api, lab)['id']}")
    if args.format == "json":
        out_json(deployment.get("steps") or [])
        return 0
    hosts = ", ".join(deployment.get("hosts") or []) or deployment.get("host") or "-"
    out(f"deployment {deployment['id']} of {lab['name']} on {hosts}, from {deployment['created']}")
    if args.follow:
        return follow(api, deployment, FINAL, times=True)
    print_steps(deployment, set(), times=True)
    out(f"deployment {deployment['id']}: {deployment['status']}")
    return 0


def cmd_network_ls(args: argparse.Namespace) -> int:
    api = client()
    labs = [find_lab(api, args.lab)] if args.lab else api.pages("labs")
    networks = []
    for lab in labs:
        for name, network in ((lab.get("labfile") or {}).get("networks") or {}).items():
            network = network or {}
            networks.append(
                {
                    "lab": lab["name"],
                    "network": name,
                    "driver": network.get("driver", "bridge"),
                    "subnet": network.get("subnet"),
                    "subnet6": network.get("subnet6"),
                    "gateway": network.get("gateway"),
                    "gateway6": network.get("gateway6"),
                }
            )
    if args.format == "json":
        out_json(networks)
        return 0
    rows = [["LAB", "NETWORK", "DRIVER", "SUBNET", "SUBNET6"]]
    for n in networks:
        rows.append([n["lab"], n["network"], n["driver"], n["subnet"] or "-", n["subnet6"] or "-"])
    out(table(rows))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    lab = find_lab(client(), args.lab)
    emit(graph.render(lab.get("labfile") or {}, args.graph_format), args.output)
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from labcli.shell import run_shell  # the websocket client only where it is needed

    server, token = load_credentials()
    lab = find_lab(Client(server, token), args.lab)
    return run_shell(server, token, lab, args.node)


def cmd_completion(args: argparse.Namespace) -> int:
    out(completion.script(parser(), args.shell))
    return 0


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


def live_action(api: Client, lab_name: str, action: dict[str, Any]) -> int:
    """Make one live change of the lab's running deployment (docs/live.md) and say it."""
    deployment = lab_deployment(api, find_lab(api, lab_name))
    outcome = api.post(f"deployments/{deployment['id']}/live", json=action)
    out(f"{outcome['action']}: done ({outcome['seconds'] * 1000:.0f} ms at the agent)")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    impairments: dict[str, str] = {}
    for word in args.impairments:
        if word == "none":
            continue
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise CliError(f"impairments: write KEY=VALUE, like loss=30%, not {word!r}.", 2)
        impairments[key] = value
    return live_action(client(), args.lab, {"set": {args.kind: args.target, **impairments}})


def cmd_link_state(args: argparse.Namespace) -> int:
    target: str | dict[str, str] = {"link": args.target} if args.link else args.target
    return live_action(client(), args.lab, {args.command: target})


def cmd_restore(args: argparse.Namespace) -> int:
    target: str | dict[str, str] = args.target
    if args.target != "all":
        target = {"link": args.target} if args.link else {"interface": args.target}
    return live_action(client(), args.lab, {"restore": target})


def cmd_node(args: argparse.Namespace) -> int:
    return live_action(client(), args.lab, {args.node_command: args.node})


def cmd_live(args: argparse.Namespace) -> int:
    api = client()
    deployment = lab_deployment(api, find_lab(api, args.lab))
    state = api.get(f"deployments/{deployment['id']}/live")
    if args.format == "json":
        out_json(state)
        return 0
    rows = [["NODE", "STATE"]] + [[n["node"], n["state"]] for n in state["nodes"]]
    out(table(rows))
    out("")
    rows = [["INTERFACE", "STATE", "IMPAIRMENTS"]]
    for i in state["interfaces"]:
        said = " ".join(f"{k}={v}" for k, v in i["impairments"].items()) or "-"
        rows.append(
            [i["interface"], "up" if i["up"] else "down", said + (" *" if i["changed"] else "")]
        )
    out(table(rows))
    return 0


def result_line(result: dict[str, Any]) -> str:
    at = "    " if result.get("at") is None else f"{float(result['at']):>5g}s"
    mark = "ok    " if result.get("ok") else "FAILED"
    return f"  {at} [{mark}] {result.get('message', '')}"


def active_run(api: Client, deployment: dict[str, Any]) -> dict[str, Any]:
    runs = api.get(f"deployments/{deployment['id']}/scenarios")
    for run in runs:
        if run["state"] in ("running", "paused"):
            return dict(run)
    raise CliError("scenario: no scenario is running on this lab.")


def cmd_scenario_run(args: argparse.Namespace) -> int:
    api = client()
    deployment = lab_deployment(api, find_lab(api, args.lab))
    body: dict[str, Any] = {"scenario": args.name}
    if args.file:
        import yaml

        steps = yaml.safe_load(read_file(args.file))
        body = {"scenario": args.name, "steps": steps}
    run = api.post(f"deployments/{deployment['id']}/scenarios", json=body)
    out(f"scenario {run['name']} (run {run['id']}): {len(run['steps'])} steps")
    if args.detach:
        return 0
    shown = 0
    while True:
        for result in run["results"][shown:]:
            out(result_line(result))
        shown = len(run["results"])
        if run["state"] not in ("running", "paused"):
            out(
                f"scenario {run['name']}: {run['state']}"
                + (f" ({run['reason']})" if run["reason"] else "")
            )
            return 0 if run["state"] == "finished" and all(r["ok"] for r in run["results"]) else 1
        time.sleep(POLL_SECONDS)
        run = api.get(f"scenario-runs/{run['id']}")


def cmd_scenario_act(args: argparse.Namespace) -> int:
    api = client()
    run = active_run(api, lab_deployment(api, find_lab(api, args.lab)))
    run = api.post(f"scenario-runs/{run['id']}/{args.scenario_command}")
    out(f"scenario {run['name']} (run {run['id']}): {run['state']} at {run['offset']:g} s")
    return 0


def cmd_scenario_ls(args: argparse.Namespace) -> int:
    api = client()
    deployment = lab_deployment(api, find_lab(api, args.lab))
    runs = api.get(f"deployments/{deployment['id']}/scenarios")
    if args.format == "json":
        out_json(runs)
        return 0
    rows = [["RUN", "SCENARIO", "STATE", "STEPS", "FAILED", "BY", "STARTED"]]
    for run in runs:
        failed = sum(not r["ok"] for r in run["results"])
        rows.append(
            [
                str(run["id"]),
                run["name"],
                run["state"],
                f"{len(run['results'])}/{len(run['steps'])}",
                str(failed),
                run["actor"],
                run["created"],
            ]
        )
    out(table(rows))
    return 0


def cmd_scenario_show(args: argparse.Namespace) -> int:
    run = client().get(f"scenario-runs/{args.run_id}")
    if args.format == "json" or args.output:
        emit(json.dumps(run, indent=2) + "\n", args.output)
        return 0
    where = f"on deployment {run['deployment']}"
    out(f"scenario {run['name']} (run {run['id']}) {where}: {run['state']}")
    for result in run["results"]:
        out(result_line(result))
    return 0


def listing(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--format", default="text", choices=["text", "json"], help="json: for scripts")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="labmgr", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", help="get a token and store it")
    login.add_argument("--server", required=True, help="e.g. https://labmgr.example.org")
    login.add_argument("--user", help="user name (asked if not given)")
    login.set_defaults(run=cmd_login)

    labs = commands.add_parser("labs", aliases=["ls"], help="list the labs")
    listing(labs)
    labs.set_defaults(run=cmd_labs)

    show = commands.add_parser(
        "inspect", aliases=["show"], help="a lab, its deployment, nodes and addresses"
    )
    show.add_argument("lab", metavar="LAB", help="name or id")
    listing(show)
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
        ("deploy", cmd_deploy, "deploy a lab, or a file (made or updated first)"),
        ("destroy", cmd_destroy, "destroy a lab's deployments"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("lab", metavar="LAB" if name == "destroy" else "LAB|FILE")
        sub.add_argument(
            "--detach", action="store_true", help="do not follow its steps until it is done"
        )
        # Following is the default; --wait is kept for the scripts that say it.
        sub.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)
        if name == "deploy":
            sub.add_argument(
                "--format",
                dest="source",
                choices=["labfile", "containerlab", "compose"],
                help="the FILE's format (default: told by its content)",
            )
        sub.set_defaults(run=run)

    logs = commands.add_parser("logs", help="the steps of a lab's latest deployment")
    logs.add_argument("lab", metavar="LAB")
    logs.add_argument("-f", "--follow", action="store_true", help="until it is done")
    listing(logs)
    logs.set_defaults(run=cmd_logs)

    network = commands.add_parser("network", help="the labs' networks")
    network_commands = network.add_subparsers(dest="network_command", required=True)
    nls = network_commands.add_parser("ls", help="list the networks (of one lab)")
    nls.add_argument("lab", metavar="LAB", nargs="?")
    listing(nls)
    nls.set_defaults(run=cmd_network_ls)

    draw = commands.add_parser("graph", help="a lab's topology as Mermaid or Graphviz dot")
    draw.add_argument("lab", metavar="LAB")
    draw.add_argument(
        "--format", dest="graph_format", default="mermaid", choices=list(graph.FORMATS)
    )
    draw.add_argument("-o", "--output", metavar="FILE")
    draw.set_defaults(run=cmd_graph)

    sh = commands.add_parser("shell", help="an interactive shell in a node")
    sh.add_argument("lab", metavar="LAB")
    sh.add_argument("node", metavar="NODE")
    sh.set_defaults(run=cmd_shell)

    comp = commands.add_parser("completion", help="a shell completion script")
    comp.add_argument("shell", choices=list(completion.SHELLS))
    comp.set_defaults(run=cmd_completion)

    stat = commands.add_parser("status", help="a lab's latest deployment")
    stat.add_argument("lab", metavar="LAB")
    listing(stat)
    stat.set_defaults(run=cmd_status)

    lv = commands.add_parser("live", help="a running lab's links and nodes, as changed live")
    lv.add_argument("lab", metavar="LAB")
    listing(lv)
    lv.set_defaults(run=cmd_live)

    st = commands.add_parser(
        "set", help="change impairments of a running lab live (loss=30%% delay=10ms ...)"
    )
    st.add_argument("lab", metavar="LAB")
    st.add_argument(
        "kind",
        choices=["link", "interface", "network"],
        help="link NODE:IFNAME: both ends of the link ending there; interface NODE:IFNAME: "
        "what it sends; network NETWORK: every attachment",
    )
    st.add_argument("target", metavar="TARGET")
    st.add_argument(
        "impairments",
        nargs="*",
        metavar="KEY=VALUE",
        help="rate, delay, jitter, loss, "
        "duplicate, corrupt, reorder; none (or nothing) for none at all",
    )
    st.set_defaults(run=cmd_set)

    for name, text in (("down", "set an interface or a link down"), ("up", "and up again")):
        sub = commands.add_parser(name, help=f"{text}, live")
        sub.add_argument("lab", metavar="LAB")
        sub.add_argument("target", metavar="NODE:IFNAME")
        sub.add_argument("--link", action="store_true", help="both ends of its link")
        sub.set_defaults(run=cmd_link_state)

    rs = commands.add_parser("restore", help="undo live changes: back to the labfile")
    rs.add_argument("lab", metavar="LAB")
    rs.add_argument("target", metavar="NODE:IFNAME|all", nargs="?", default="all")
    rs.add_argument("--link", action="store_true", help="both ends of its link")
    rs.set_defaults(run=cmd_restore)

    node = commands.add_parser("node", help="stop, start, restart or kill a running node")
    node_commands = node.add_subparsers(dest="node_command", required=True)
    for name, text in (
        ("stop", "stop it (SIGTERM, then kill), keeping its interfaces and addresses"),
        ("start", "start it again"),
        ("restart", "stop and start it"),
        ("kill", "kill it at once"),
    ):
        sub = node_commands.add_parser(name, help=text)
        sub.add_argument("lab", metavar="LAB")
        sub.add_argument("node", metavar="NODE")
        sub.set_defaults(run=cmd_node)

    scenario = commands.add_parser("scenario", help="run a lab's scenarios (timed actions)")
    scenario_commands = scenario.add_subparsers(dest="scenario_command", required=True)
    srun = scenario_commands.add_parser("run", help="start a scenario and follow its steps")
    srun.add_argument("lab", metavar="LAB")
    srun.add_argument("name", metavar="SCENARIO", help="one of the lab's, or a name for -f's")
    srun.add_argument("-f", "--file", metavar="FILE", help="the steps, a YAML or JSON list")
    srun.add_argument("--detach", action="store_true", help="do not follow its steps")
    srun.set_defaults(run=cmd_scenario_run)
    for name, text in (
        ("pause", "pause the lab's running scenario"),
        ("resume", "resume it"),
        ("stop", "stop it; the lab is restored to its labfile"),
    ):
        sub = scenario_commands.add_parser(name, help=text)
        sub.add_argument("lab", metavar="LAB")
        sub.set_defaults(run=cmd_scenario_act)
    sls = scenario_commands.add_parser("ls", help="the runs of the lab's deployment")
    sls.add_argument("lab", metavar="LAB")
    listing(sls)
    sls.set_defaults(run=cmd_scenario_ls)
    sshow = scenario_commands.add_parser("show", help="a run's results (-o: export them)")
    sshow.add_argument("run_id", metavar="RUN", help="the id of the run (scenario ls)")
    sshow.add_argument("-o", "--output", metavar="FILE", help="write the run as JSON")
    listing(sshow)
    sshow.set_defaults(run=cmd_scenario_show)

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
