"""`python -m workers facts | apply LABFILE | status NAME | exec NAME NODE [-- CMD...] |
destroy NAME | sweep | image ls|pull|rm|prune|load|build`: the agent driven by hand,
through the same code the tasks use;
`python -m workers agent`: the long-running agent serving this host's queue.

`exec` without a command opens an interactive shell on a pty inside the node and relays
the caller's terminal to it (raw, with its window size), like the web terminals do.
"""

# The docstring above is the --help text. Each subcommand imports what it needs when it
# runs: a command answers as fast as its own work allows, without loading the labfile
# reader, pyroute2 or Celery it does not use (tests/unit/workers/test_cli_imports.py).

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import termios
import tty
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from labplan import naming
from workers import config

if TYPE_CHECKING:
    from workers.executor import ApplyResult, Executor, Step
    from workers.images.store import Image, ImageStore


def _print_step(step: Step) -> None:
    where = f"[{step.index + 1}/{step.total}]" if step.total else "[rollback]"
    detail = f": {step.detail}" if step.detail else ""  # a pull's layers and bytes so far
    print(f"{where} {step.kind} {step.target} {step.state} ({step.seconds * 1000:.1f} ms){detail}")


def _print_result(result: ApplyResult) -> None:
    print(f"deployment {result.token} of lab {result.lab} applied in {result.seconds:.3f} s")
    for node in result.nodes:
        print(f"  {node.name}: pid {node.pid}, netns {node.netns or 'host'}")
        if node.note:
            print(f"    note: {node.note}")
        for interface in node.interfaces:
            if interface.name != "lo" or node.netns is None:
                print(f"    {interface.name} {' '.join(interface.addresses) or '-'}")


def _next_deployment(executor: Executor) -> int:
    known = executor.found_tokens()
    ids = [naming.deployment_from_token(t) or 0 for t in known]
    return max(ids, default=0) + 1


def cmd_facts(args: argparse.Namespace) -> int:
    from workers import facts as host_facts

    print(json.dumps(host_facts.probe().to_dict(), indent=2))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from labplan import codec, labfile
    from labplan.compiler import compile_plan
    from labplan.errors import LabfileError
    from workers.errors import ApplyError
    from workers.wiring import kernel_executor

    try:
        lab = labfile.load(Path(args.labfile).read_bytes())
    except LabfileError as exc:
        print(f"{args.labfile} is invalid:\n{exc}", file=sys.stderr)
        return 2
    executor = kernel_executor(progress=None if args.quiet else _print_step)
    deployment = args.deployment
    if deployment is None:
        token = executor.journal.find(lab.name)
        deployment = naming.deployment_from_token(token) if token else None
    deployment = deployment or _next_deployment(executor)
    host = config.host_name()
    plan = compile_plan(lab, deployment=deployment, default_host=host)
    try:
        result = executor.apply(codec.plan_to_dict(plan), host)
    except ApplyError as exc:
        print(f"apply failed: {exc}", file=sys.stderr)
        return 1
    _print_result(result)
    return 0


def _token(executor: Executor, name: str) -> str | None:
    token = executor.journal.find(name)
    if token is None:
        print(f"no deployment {name!r} on this host", file=sys.stderr)
    return token


def cmd_status(args: argparse.Namespace) -> int:
    from workers.status import status
    from workers.wiring import kernel_executor

    executor = kernel_executor()
    token = _token(executor, args.name)
    if token is None:
        return 1
    record, nodes, alive = status(executor, token)
    assert record is not None
    print(f"deployment {token} of lab {record.lab}: {record.state}")
    if record.error:
        print(f"  error: {record.error}")
    for node in nodes:
        state = "running" if alive.get(node.name) else "stopped"
        print(f"  {node.name}: {state}, pid {node.pid}, netns {node.netns or 'host'}")
        for interface in node.interfaces:
            print(f"    {interface.name} {' '.join(interface.addresses) or '-'}")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from workers.init.build import lminit_path
    from workers.kernel.cgroups import Cgroups
    from workers.kernel.processes import Processes, alive
    from workers.wiring import kernel_executor

    executor = kernel_executor()
    token = _token(executor, args.name)
    found = executor.journal.node(token, args.node) if token else None
    if found is None:
        print(f"no running node {args.node!r} in {args.name!r}", file=sys.stderr)
        return 1
    init, spawn = found.init, found.spawn
    if not alive(init):  # lminit checks again as it enters, by pidfd
        gone = f"node {args.node!r} of {args.name!r} is not running: its init is gone"
        print(gone, file=sys.stderr)
        return 1
    env = {"HOSTNAME": spawn.hostname, **dict(spawn.environment)}
    processes = Processes(lminit_path(executor.data_dir), executor.data_dir)
    procs = Cgroups().procs_files(spawn.cgroup)
    if not args.command:
        master, shell = processes.shell(init, procs, env, controlling_tty=True)
        return relay_terminal(master, shell)
    return subprocess.call(processes.exec_argv(init, procs, args.command, env))


def _copy_window_size(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def _raw_terminal(fd: int, master: int) -> Iterator[None]:
    """The caller's terminal in raw mode (keys go to the node's pty as typed, ^C
    included), its size followed on SIGWINCH; all restored on the way out."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    _copy_window_size(fd, master)
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(fd, master))
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
        signal.signal(signal.SIGWINCH, previous)


def _pump(master: int, stdin: int, stdout: int) -> None:
    """Copy stdin to the pty and the pty to stdout until the pty closes."""
    reading_stdin = True
    while True:
        watched = [master, stdin] if reading_stdin else [master]
        try:
            ready, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue  # SIGWINCH
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""  # EIO: every slave end is closed, the shell is gone
            if not data:
                return
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 65536)
            if data:
                os.write(master, data)
            else:
                # Not a terminal and at its end: the shell reads end-of-file too.
                reading_stdin = False
                os.write(master, b"\x04")


def relay_terminal(master: int, shell: subprocess.Popen[bytes]) -> int:
    """Relay this process's terminal to the node's pty; the shell's exit status."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    try:
        with _raw_terminal(stdin, master):
            _pump(master, stdin, stdout)
    finally:
        os.close(master)
    return shell.wait()


def cmd_destroy(args: argparse.Namespace) -> int:
    from workers.wiring import kernel_executor

    executor = kernel_executor()
    token = executor.journal.find(args.name) or args.name
    if naming.deployment_from_token(token) is None:
        print(f"no deployment {args.name!r} on this host", file=sys.stderr)
        return 1
    for line in executor.destroy(token):
        print(f"removed {line}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from workers.wiring import kernel_executor

    executor = kernel_executor()
    removed = executor.sweep(args.keep)
    for line in removed:
        print(f"removed {line}")
    print(f"sweep removed {len(removed)} objects")
    return 0


def cmd_key_set(args: argparse.Namespace) -> int:
    """Install the host key an admin got from labmgr when registering this host."""
    from labplan import envelope
    from workers import keys

    text = sys.stdin.readline()
    try:
        key = envelope.parse_key(text)
    except ValueError as exc:
        print(f"no key installed: {exc} (give it on standard input)", file=sys.stderr)
        return 2
    path = keys.key_path(config.data_dir())
    keys.write_key(path, key)
    print(f"host key installed in {path}; restart the agent to use it")
    return 0


def _store_and_use() -> tuple[ImageStore, dict[str, list[str]]]:
    """The agent's image store, and the images its deployments run (digest -> tokens)."""
    from workers.images.store import ImageStore
    from workers.journal import Journal, images_in_use

    data = config.data_dir()
    return ImageStore.from_env(data), images_in_use(Journal(data / "journal"))


def _print_image(image: Image) -> None:
    print(f"{image.ref}  {image.digest}  {image.size} bytes")


def cmd_image_ls(args: argparse.Namespace) -> int:
    import time

    store, in_use = _store_and_use()
    facts = store.images(in_use)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    print(f"{'REFERENCE':<48} {'DIGEST':<19} {'SIZE':>10}  {'LAST USED':<16} USED BY")
    for fact in facts:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(fact["last_used"]))
        for ref in fact["refs"] or ["<none>"]:
            print(
                f"{ref:<48} {fact['digest'][:19]:<19} {fact['size']:>10}  "
                f"{used if fact['last_used'] else '-':<16} {', '.join(fact['tokens']) or '-'}"
            )
    return 0


def _image_error(exc: Exception) -> int:
    print(exc, file=sys.stderr)
    return 1


def cmd_image_pull(args: argparse.Namespace) -> int:
    from workers.images.store import ImageError

    store, _ = _store_and_use()
    try:
        image = store.ensure(args.ref, progress=lambda p: print(f"  {p.text}", flush=True))
    except ImageError as exc:
        return _image_error(exc)
    _print_image(image)
    return 0


def cmd_image_rm(args: argparse.Namespace) -> int:
    store, in_use = _store_and_use()
    removed, kept = store.remove(args.refs, in_use)
    for ref in removed:
        print(f"removed {ref}")
    for why in kept:
        print(f"kept {why}", file=sys.stderr)
    return 1 if kept else 0


def cmd_image_prune(args: argparse.Namespace) -> int:
    store, in_use = _store_and_use()
    removed = store.prune(in_use, all=not args.cache)
    for name in removed:
        print(f"removed {name}")
    print(f"prune removed {len(removed)} images")
    return 0


def cmd_image_load(args: argparse.Namespace) -> int:
    from workers.images.store import ImageError

    store, _ = _store_and_use()
    try:
        images = store.load(Path(args.file), args.name)
    except ImageError as exc:
        return _image_error(exc)
    for image in images:
        _print_image(image)
    return 0


def cmd_image_build(args: argparse.Namespace) -> int:
    from workers.images.store import ImageError

    store, _ = _store_and_use()
    packages = [p.strip() for p in args.packages.split(",") if p.strip()]
    try:
        image = store.build_debian(
            args.name,
            args.debian,
            packages,
            mirror=args.mirror,
            cmd=args.cmd or ("/bin/bash",),
            variant=args.variant,
        )
    except ImageError as exc:
        return _image_error(exc)
    _print_image(image)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from workers.daemon import main as serve  # Celery is needed only here

    return serve()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    sub = p.add_subparsers(dest="command_name", required=True)
    sub.add_parser("facts", help="probe this host's kernel").set_defaults(run=cmd_facts)
    a = sub.add_parser("apply", help="build (or converge) a lab from a labfile")
    a.add_argument("labfile")
    a.add_argument("--deployment", type=int, help="deployment id (default: reuse or next)")
    a.add_argument("--quiet", action="store_true", help="no line per step")
    a.set_defaults(run=cmd_apply)
    s = sub.add_parser("status", help="a deployment's nodes and interfaces")
    s.add_argument("name", help="lab name or deployment token")
    s.set_defaults(run=cmd_status)
    e = sub.add_parser("exec", help="run a command (default: a shell on a pty) inside a node")
    e.add_argument("name")
    e.add_argument("node")
    e.add_argument("command", nargs=argparse.REMAINDER)
    e.set_defaults(run=cmd_exec)
    d = sub.add_parser("destroy", help="remove everything of a deployment")
    d.add_argument("name")
    d.set_defaults(run=cmd_destroy)
    w = sub.add_parser("sweep", help="remove every labmgr object no live deployment owns")
    w.add_argument("--keep", nargs="*", default=[], help="tokens of live deployments")
    w.set_defaults(run=cmd_sweep)
    k = sub.add_parser("key", help="the host key the agent signs and checks messages with")
    k.add_subparsers(dest="key_command", required=True).add_parser(
        "set", help="install the key labmgr gave when this host was registered (stdin)"
    ).set_defaults(run=cmd_key_set)
    i = sub.add_parser("image", help="this host's image store").add_subparsers(
        dest="image_command", required=True
    )
    ls = i.add_parser("ls", help="the images present, their size, last use and users")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=cmd_image_ls)
    pull = i.add_parser(
        "pull", help="pull an image into the store (through LABMGR_REGISTRY_MIRRORS)"
    )
    pull.add_argument("ref")
    pull.set_defaults(run=cmd_image_pull)
    rm = i.add_parser("rm", help="remove images (references or digests) no deployment runs")
    rm.add_argument("refs", nargs="+")
    rm.set_defaults(run=cmd_image_rm)
    prune = i.add_parser("prune", help="remove every image no deployment runs")
    prune.add_argument(
        "--cache", action="store_true", help="only down to LABMGR_IMAGE_CACHE_MAX, oldest first"
    )
    prune.set_defaults(run=cmd_image_prune)
    load = i.add_parser("load", help="load a docker save or OCI archive (or OCI layout)")
    load.add_argument("file")
    load.add_argument("--name", help="the reference to tag its single image with")
    load.set_defaults(run=cmd_image_load)
    build = i.add_parser("build", help="build an image from Debian's packages (mmdebstrap)")
    build.add_argument("name", help="its reference, e.g. labs/frr:1")
    build.add_argument("--debian", default="bookworm", help="the suite (default %(default)s)")
    build.add_argument("--packages", default="", help="comma-separated, e.g. frr,iperf3")
    build.add_argument("--mirror", help="a Debian mirror URL (default: mmdebstrap's)")
    build.add_argument("--cmd", nargs="+", help="its Cmd (default /bin/bash)")
    build.add_argument(
        "--variant", default="apt", help="mmdebstrap's variant (default %(default)s)"
    )
    build.set_defaults(run=cmd_image_build)
    g = sub.add_parser("agent", help="serve this host's queue (REDIS_URL, LABMGR_AGENT_HOST)")
    g.set_defaults(run=cmd_agent)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "command", None) and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    from workers.init.build import NotBuilt  # what every kernel command may raise

    try:
        return int(args.run(args))
    except NotBuilt as exc:
        print(exc, file=sys.stderr)
        return 2
