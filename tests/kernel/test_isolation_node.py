"""Attacks from inside a node a plain user may deploy (`rootfs: host`, user namespace on,
the defaults), each tried for real through the lab's exec: the node must read nothing of
the host that an unprivileged host user could not, see none of the host's processes, get
nothing from setuid programs or device nodes of the host's tree, and be entered only
while its own init runs. Each asserts what the user sees and that the host is unchanged.

The host files under attack live in a directory of the host's root filesystem that nodes
see (below /var/tmp: a node's /tmp is its own), removed after each test; the agent's data
directory is put there too, so the agent's own state is in a node's view."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.workers.test_capture import Sent
from workers.agent import Agent
from workers.capture.registry import Captures, Target, enter_node
from workers.capture.tasks import capture_start, node_target
from workers.driver import NodeProcess
from workers.init.build import lminit_path
from workers.kernel.processes import Processes, alive, start_time

from .conftest import PYTHON, Lab
from .test_node_options import one_node

SHADOW = Path("/etc/shadow")
SPOOL = Path("/var/tmp")
_dirs = itertools.count()


def host_file(path: Path, text: str, mode: int, owner: int = 0) -> Path:
    path.write_text(text)
    os.chown(path, owner, owner)
    path.chmod(mode)
    return path


def host_dir(path: Path, mode: int, owner: int = 0) -> Path:
    path.mkdir()
    os.chown(path, owner, owner)
    path.chmod(mode)
    return path


def snapshot(top: Path) -> dict[str, tuple[int, int, int, bytes | None]]:
    """Every entry below `top` with its mode, owner, size and content (files)."""
    found = {}
    for path in sorted([top, *top.rglob("*")]):
        st = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        found[str(path)] = (st.st_mode, st.st_uid, st.st_size, content)
    return found


@pytest.fixture
def on_host() -> Iterator[Path]:
    """A directory of the host's root filesystem that nodes see, gone after the test."""
    if os.stat(SPOOL).st_dev != os.stat("/").st_dev:
        pytest.skip(f"{SPOOL} is not on the root filesystem, which nodes see")
    top = SPOOL / f"lmiso-{os.getpid()}-{next(_dirs)}"
    host_dir(top, 0o755)
    yield top
    shutil.rmtree(top)


@pytest.fixture
def data_dir(on_host: Path) -> Path:
    """The agent's data directory where a node could see it (it makes it 0700 itself)."""
    return on_host / "agent"


@pytest.fixture
def lab(build: Any) -> Lab:
    built: Lab = build(one_node({"command": ["sleep", "3600"]}, "iso"))
    return built


def denied(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode != 0 and "Permission denied" in done.stderr


# --- host files -------------------------------------------------------------------------


def test_a_node_can_neither_read_nor_change_the_hosts_shadow_file(lab: Lab) -> None:
    before = SHADOW.read_bytes(), SHADOW.stat().st_mtime_ns

    read = lab.run("box", "head", "-c", "64", str(SHADOW))
    copy = lab.run("box", "cp", str(SHADOW), "/tmp/shadow")
    write = lab.run("box", "sh", "-c", f"echo 'lm::0:0:::::' >> {SHADOW}")
    owner = lab.run("box", "stat", "-c", "%u:%g", str(SHADOW))

    assert denied(read) and read.stdout == ""
    assert denied(copy) and denied(write)
    assert owner.stdout == "65534:65534\n"  # host root is nobody to the node
    assert (SHADOW.read_bytes(), SHADOW.stat().st_mtime_ns) == before


def test_a_nodes_root_home_is_its_own_and_empty_not_the_host_roots(lab: Lab) -> None:
    hosts = sorted(os.listdir("/root"))
    if not hosts:
        pytest.skip("host root's home is empty: nothing to keep hidden")
    marker = f"lm-{lab.token}"

    listing = lab.run("box", "ls", "-A", "/root")
    peek = lab.run("box", "cat", f"/root/{hosts[0]}")
    mine = lab.run("box", "sh", "-c", f"echo x > /root/{marker} && ls -A /root")

    assert (listing.returncode, listing.stdout) == (0, "")
    assert "No such file" in peek.stderr
    assert mine.stdout == f"{marker}\n"
    assert sorted(os.listdir("/root")) == hosts  # nothing written to the host's


def test_a_root_only_directory_of_the_host_stays_closed_while_a_world_readable_one_reads(
    lab: Lab, on_host: Path
) -> None:
    """The control plane's data directory (database, secret key, admin password) is a
    root-only directory: its 0700 is what keeps a node out, not its being hidden."""
    public = host_dir(on_host / "public", 0o755)
    host_file(public / "notice", "hello\n", 0o644)
    private = host_dir(on_host / "labmgr-var", 0o700)
    host_file(private / "secret_key", "s3cret\n", 0o600)
    host_file(private / "db.sqlite3", "tables\n", 0o644)  # readable, in a closed directory
    host_file(public / "admin-password", "hunter2\n", 0o600)  # closed, in an open one
    before = snapshot(on_host)

    notice = lab.run("box", "cat", str(public / "notice"))
    listing = lab.run("box", "ls", str(private))
    secret = lab.run("box", "cat", str(private / "secret_key"))
    database = lab.run("box", "cat", str(private / "db.sqlite3"))
    password = lab.run("box", "cat", str(public / "admin-password"))
    tamper = lab.run("box", "sh", "-c", f"rm -f {public}/notice; echo x > {public}/new")

    assert notice.stdout == "hello\n"  # the node does see this part of the host's tree
    assert denied(listing) and denied(secret) and denied(database) and denied(password)
    assert "s3cret" not in secret.stdout + database.stdout and "hunter2" not in password.stdout
    assert tamper.stderr.count("Permission denied") == 2
    assert snapshot(on_host) == before


def test_the_agents_journal_and_job_records_are_not_readable_from_its_nodes(
    lab: Lab, data_dir: Path
) -> None:
    agent = Agent(lab.executor, lambda task, kwargs: None, "local")
    agent.run("t-iso", "exec", exec_job(lab, ["true"]))
    journal = data_dir / "journal" / f"{lab.token}.json"
    job = data_dir / "jobs" / "t-iso.json"
    assert journal.exists() and job.exists()

    listing = lab.run("box", "ls", str(data_dir))
    reads = [lab.run("box", "cat", str(path)) for path in (journal, job)]
    layer = lab.run("box", "ls", str(data_dir / "run" / lab.token))

    assert denied(listing) and denied(layer)
    assert all(denied(done) and done.stdout == "" for done in reads)


def test_a_private_file_of_another_host_user_stays_theirs_even_to_the_nodes_uid_1000(
    lab: Lab, on_host: Path
) -> None:
    home = host_dir(on_host / "home-1000", 0o700, owner=1000)
    host_file(home / "diary", "dear diary\n", 0o600, owner=1000)
    shared = host_dir(on_host / "shared-1000", 0o755, owner=1000)
    host_file(shared / "readme", "public\n", 0o644, owner=1000)
    as_1000 = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]

    readme = lab.run("box", "cat", str(shared / "readme"))
    as_root = lab.run("box", "cat", str(home / "diary"))
    as_user = lab.run("box", *as_1000, "cat", str(home / "diary"))

    assert readme.stdout == "public\n"
    assert denied(as_root) and denied(as_user)  # the node's 1000 is not the host's
    assert (home / "diary").read_text() == "dear diary\n"


# --- the host's processes ---------------------------------------------------------------

PIDS = 'for d in /proc/[0-9]*; do echo "${d#/proc/}"; done'


def test_a_node_that_unmounts_its_proc_finds_its_own_processes_not_the_hosts(
    lab: Lab,
) -> None:
    script = (
        f"umount /proc && {PIDS} && echo cmdline $(tr '\\0' ' ' < /proc/1/cmdline)"
        " && { head -c 1 /proc/kmsg; echo 3 > /proc/sys/vm/drop_caches; } 2>&1 | sed 's/^/host /'"
        " && umount -l /proc && echo left $(ls -A /proc | wc -l)"
        " && mount -t proc proc /mnt 2>&1 | head -n1"
    )

    done = lab.run("box", "sh", "-c", script)

    lines = done.stdout.splitlines()
    pids = {int(line) for line in lines if line.isdigit()}
    host_pids = {int(n) for n in os.listdir("/proc") if n.isdigit()}
    assert done.returncode == 0, done.stderr
    assert 1 in pids and os.getpid() not in pids  # the test (here: the agent) is not
    assert len(pids) < 10 < len(host_pids)  # init, sleep, the script
    assert next(line for line in lines if line.startswith("cmdline")).count("lminit") == 1
    # Nor is anything of the host's kernel readable or writable through it.
    assert [line for line in lines if line.startswith("host")] == [
        "host head: cannot open '/proc/kmsg' for reading: Permission denied",
        "host sh: 1: cannot create /proc/sys/vm/drop_caches: Permission denied",
    ]
    # Below the node's own proc there is nothing, and no proc is left it could remount.
    assert "left 0" in lines
    assert "permission denied" in lines[-1]


# --- setuid programs and device nodes of the host's tree ------------------------------


def test_a_setuid_root_program_of_the_host_tree_gives_a_node_nothing(
    lab: Lab, on_host: Path
) -> None:
    tools = host_dir(on_host / "bin", 0o755)
    for name, source in (("suid-cat", "/bin/cat"), ("suid-id", "/usr/bin/id")):
        shutil.copy(source, tools / name)
        os.chown(tools / name, 0, 0)
        (tools / name).chmod(0o4755)
    as_1000 = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]

    shadow = lab.run("box", str(tools / "suid-cat"), str(SHADOW))
    euid = lab.run("box", *as_1000, str(tools / "suid-id"), "-u")
    mounts = lab.run("box", "cat", "/proc/self/mountinfo")

    assert denied(shadow) and shadow.stdout == ""
    assert euid.stdout == "1000\n"  # not host root, not even the node's root
    root_line = next(line for line in mounts.stdout.splitlines() if line.split()[4] == "/")
    assert {"nosuid", "nodev"} <= set(root_line.split()[5].split(","))


def test_a_file_capability_of_the_host_tree_gives_a_nodes_user_nothing(
    lab: Lab, on_host: Path
) -> None:
    """Host root's file capabilities would hold in the node's user namespace (they are
    root's of an ancestor namespace): the nosuid overlay is what drops them."""
    if shutil.which("setcap") is None:
        pytest.skip("needs setcap(8) (libcap2-bin)")
    tools = host_dir(on_host / "caps", 0o755)
    shutil.copy("/bin/cat", tools / "cap-cat")
    subprocess.run(["setcap", "cap_dac_override+ep", str(tools / "cap-cat")], check=True)
    made = lab.run("box", "sh", "-c", "echo mine > /tmp/root-only && chmod 600 /tmp/root-only")
    assert made.returncode == 0, made.stderr
    as_1000 = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]

    done = lab.run("box", *as_1000, str(tools / "cap-cat"), "/tmp/root-only")

    assert denied(done) and done.stdout == ""


def test_a_device_node_in_the_host_tree_does_not_open_in_a_node(lab: Lab, on_host: Path) -> None:
    device = on_host / "null-copy"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    device.chmod(0o666)
    with device.open("w") as works_on_the_host:
        works_on_the_host.write("x")

    write = lab.run("box", "sh", "-c", f"echo x > {device}")
    read = lab.run("box", "head", "-c", "1", str(device))
    own = lab.run("box", "sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c")

    assert denied(write) and denied(read)
    assert own.stdout == "4\n"  # the node's own /dev works


# --- what a node may write --------------------------------------------------------------


def test_a_nodes_own_writes_work_and_never_reach_the_host(lab: Lab) -> None:
    name = f"lm-{lab.token}"
    paths = [
        f"/tmp/{name}",
        f"/run/{name}",
        f"/root/{name}",
        f"/{name}/file",
        f"/etc/{name}",
        f"/var/log/{name}",
        f"{SPOOL}/{name}",  # world-writable on the host: the copy is the node's
    ]
    script = f"mkdir /{name} && " + " && ".join(f"echo {p} > {p} && cat {p}" for p in paths)

    done = lab.run("box", "sh", "-c", script)

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == paths
    assert [p for p in [*paths, f"/{name}"] if os.path.lexists(p)] == []


# --- entering a node --------------------------------------------------------------------


def exec_job(lab: Lab, argv: list[str]) -> dict[str, Any]:
    deployment = int(lab.token.removeprefix("lm"), 36)
    return {
        "deployment": deployment,
        "token": lab.token,
        "node": "box",
        "argv": argv,
        "timeout": 10,
    }


class Recorder:
    """Terminals that only note what they were asked to open."""

    def __init__(self) -> None:
        self.opened: list[int] = []

    def open(self, session: str, init: NodeProcess, spawn: Any, cols: int, rows: int) -> None:
        self.opened.append(init.pid)

    def close_token(self, token: str) -> None:
        pass


def kill_init(lab: Lab) -> NodeProcess:
    init = lab.init("box")
    os.kill(init.pid, signal.SIGKILL)
    os.waitpid(init.pid, 0)  # the agent (here, the test) is the inits' subreaper
    assert not alive(init)
    return init


def test_a_node_whose_init_is_gone_is_reported_gone_and_never_entered(
    lab: Lab, data_dir: Path, on_host: Path
) -> None:
    marker = on_host / "entered"
    init = kill_init(lab)
    terminals = Recorder()
    agent = Agent(lab.executor, lambda task, kwargs: None, "local", terminals=terminals)
    captures = Captures(data_dir, Sent().send, Sent().upload)
    env = {**os.environ, "LABMGR_AGENT_DATA_DIR": str(data_dir)}

    answer = agent.run(None, "exec", exec_job(lab, ["touch", str(marker)]))
    terminal = agent.terminal_open("s" * 22, lab.token, "box", 80, 24)
    capture = capture_start(
        captures,
        lab.executor.journal,
        capture="c0ffee00c0ffee00c0ffee00c0ffee00",
        deployment=int(lab.token.removeprefix("lm"), 36),
        token=lab.token,
        node="box",
        interface="lo",
        filter="",
        max_bytes=1000,
        max_seconds=5,
    )
    cli = subprocess.run(
        [sys.executable, "-m", "workers", "exec", "iso", "box", "--", "touch", str(marker)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
        timeout=30,
    )
    direct = lab.run("box", "touch", str(marker))

    gone = f"node 'box' of {lab.token} is not running: its init is gone"
    assert (answer["exit"], answer["stderr"]) == (127, gone + "\n")
    assert terminal is False and terminals.opened == []
    assert capture == {"ok": False, "field": "node", "error": gone}
    assert (cli.returncode, cli.stderr) == (
        1,
        "node 'box' of 'iso' is not running: its init is gone\n",
    )
    assert direct.returncode == 127 and f"init (pid {init.pid}" in direct.stderr
    assert not marker.exists()


def test_a_pid_reused_by_another_process_is_never_entered(lab: Lab, on_host: Path) -> None:
    """The journal names the init by pid and start time: here a host process holds a pid
    the journal names with another start time, as after the init died and its pid was
    given again. Entering it by pid alone would run the command on the host."""
    marker = on_host / "entered"
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        started = start_time(stranger.pid)
        assert started is not None
        recycled = NodeProcess(stranger.pid, started - 1)
        files = Processes(lminit_path(lab.executor.data_dir), lab.executor.data_dir)

        done = files.run(recycled, [], ["touch", str(marker)], {}, timeout=10)
        target = Target(pid=stranger.pid, start=started - 1, cgroup_procs=(), interfaces=())
        with pytest.raises(subprocess.SubprocessError):
            subprocess.run(["touch", str(marker)], preexec_fn=enter_node(target), check=False)
        the_node = node_target(lab.executor.journal, lab.token, "box")
        assert the_node is not None
        links = subprocess.run(
            ["ip", "-o", "link"], preexec_fn=enter_node(the_node), capture_output=True, text=True
        )
    finally:
        stranger.kill()
        stranger.wait()

    assert done.returncode == 127
    assert b"the node is not running" in done.stderr
    assert not marker.exists()
    assert [line.split()[1] for line in links.stdout.splitlines()] == ["lo:"]  # the node's


def test_a_host_service_socket_in_the_host_tree_does_not_connect_from_a_node(
    lab: Lab, on_host: Path
) -> None:
    path = on_host / "service.sock"
    with socket.socket(socket.AF_UNIX) as service:
        service.bind(str(path))
        path.chmod(0o777)  # anyone on the host may connect
        service.listen(1)
        with socket.socket(socket.AF_UNIX) as host_client:
            host_client.connect(str(path))  # it does serve the host

        connect = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
        done = lab.run("box", PYTHON, "-c", connect)

    assert done.returncode == 1 and "ConnectionRefusedError" in done.stderr
