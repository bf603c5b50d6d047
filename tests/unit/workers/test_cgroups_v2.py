"""The cgroup v2 path of `workers.kernel.cgroups`, run against a temporary directory that
behaves like a cgroup2 mount: controllers enabled from the root down, limits written in
the kernel's formats and read back, processes killed through cgroup.kill, cgroups
removed from the bottom up.

This host is v1/hybrid, so these tests stand in for a v2 kernel; a real v2 host is still
needed to prove the path end to end (tests/kernel on such a host). The stand-in
(`FakeCgroup2`) imitates what the code relies on: mkdir fills a cgroup with its interface
files (those of the controllers its parent delegates), writes are validated and
normalised as the kernel does (cpu.max "quota period", memory rounded down to a page,
io.max one line per device with all four keys), cgroup.procs lists live processes only
(an exited one leaves it), cgroup.kill SIGKILLs the subtree, and rmdir refuses a cgroup
with children or processes.
"""

from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.kernel.cgroups import CgroupError, CgroupLayout, Cgroups

# The kernel's order, which cgroup.controllers and cgroup.subtree_control print in.
KERNEL_ORDER = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
PAGE = 4096
DEFAULT_PERIOD = 100_000
IO_KEYS = ("rbps", "wbps", "riops", "wiops")
INTERFACE = {
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100", "cpu.stat": "usage_usec 0"},
    "memory": {"memory.max": "max", "memory.swap.max": "max", "memory.current": "0"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "io": {"io.max": "", "io.weight": "default 100"},
}
READ_ONLY = {"cgroup.controllers", "cgroup.events", "cpu.stat", "memory.current", "pids.current"}

_mkdir, _rmdir = pathlib.Path.mkdir, pathlib.Path.rmdir
_read_text, _write_text = pathlib.Path.read_text, pathlib.Path.write_text


def _live(pid: int) -> bool:
    """Whether a process has not exited: cgroup.procs skips dead ones, zombies too."""
    try:
        stat = _read_text(Path(f"/proc/{pid}/stat"))
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _invalid(value: str) -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL), value)


def _memparse(value: str) -> int:
    """The kernel's reading of a size: digits with an optional K/M/G/T suffix."""
    units = {"k": 10, "m": 20, "g": 30, "t": 40}
    number, suffix = (value[:-1], value[-1].lower()) if value[-1:].isalpha() else (value, "")
    if not number.isdigit() or (suffix and suffix not in units):
        raise _invalid(value)
    return int(number) << units.get(suffix, 0)


def _limit(value: str, minimum: int = 0) -> str:
    if value == "max":
        return value
    if not value.isdigit() or int(value) < minimum:
        raise _invalid(value)
    return value


class FakeCgroup2:
    """A temporary directory that answers mkdir, rmdir and writes like a cgroup2 mount."""

    def __init__(self, root: Path, controllers: tuple[str, ...], kill_file: bool = True) -> None:
        self.root = root
        self.kill_file = kill_file
        self.events: list[tuple[str, str]] = []  # (what, cgroup relative to the root)
        _write_text(root / "cgroup.controllers", " ".join(controllers) + "\n")
        for name in ("cgroup.subtree_control", "cgroup.procs"):
            _write_text(root / name, "")

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path != self.root else "/"

    def owns(self, path: Path) -> bool:
        return path.is_relative_to(self.root)

    def controllers(self, cgroup: Path) -> list[str]:
        return (cgroup / "cgroup.controllers").read_text().split()

    def procs(self, cgroup: Path) -> list[int]:
        return [int(p) for p in _read_text(cgroup / "cgroup.procs").split() if _live(int(p))]

    def read(self, path: Path) -> str:
        if path.name == "cgroup.procs":
            return "".join(f"{pid}\n" for pid in self.procs(path.parent))
        return _read_text(path)

    def cgroups(self, top: Path) -> list[Path]:
        return [Path(d) for d, _, _ in os.walk(top)]

    # -- mkdir and rmdir

    def mkdir(self, path: Path, exist_ok: bool = False) -> None:
        if path.exists():
            if exist_ok:
                return
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
        if not path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        _mkdir(path)
        delegated = (path.parent / "cgroup.subtree_control").read_text().split()
        files = {"cgroup.controllers": " ".join(delegated), "cgroup.subtree_control": ""}
        files |= {"cgroup.procs": "", "cgroup.events": "populated 0\nfrozen 0"}
        if self.kill_file:
            files["cgroup.kill"] = ""
        for controller in delegated:
            files |= INTERFACE.get(controller, {})
        for name, content in files.items():
            _write_text(path / name, content + "\n" if content else "")
        self.events.append(("mkdir", self.rel(path)))

    def rmdir(self, path: Path) -> None:
        if not path.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        if path == self.root or any(p.is_dir() for p in path.iterdir()) or self.procs(path):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        for file in path.iterdir():
            file.unlink()
        _rmdir(path)
        self.events.append(("rmdir", self.rel(path)))

    # -- writes

    def write(self, path: Path, value: str) -> None:
        cgroup, name = path.parent, path.name
        if not path.exists():  # cgroupfs creates no files: the controller is not delegated
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        if name in READ_ONLY:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        if name == "cgroup.subtree_control":
            self.enable(cgroup, value)
        elif name == "cgroup.procs":
            self.move(cgroup, int(value))
        elif name == "cgroup.kill":
            if value.strip() != "1":
                raise _invalid(value)
            self.kill(cgroup)
        else:
            _write_text(path, self.normalise(name, value.strip(), path.read_text()) + "\n")
            self.events.append((name, self.rel(cgroup)))

    def enable(self, cgroup: Path, value: str) -> None:
        enabled = set((cgroup / "cgroup.subtree_control").read_text().split())
        available = self.controllers(cgroup)
        for token in value.split():
            sign, controller = token[0], token[1:]
            if sign not in "+-" or controller not in available:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), token)
            if cgroup != self.root and self.procs(cgroup):
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), "no internal processes")
            (enabled.add if sign == "+" else enabled.discard)(controller)
        text = " ".join(c for c in KERNEL_ORDER if c in enabled)
        _write_text(cgroup / "cgroup.subtree_control", text + "\n" if text else "")
        self.events.append(("enable " + text, self.rel(cgroup)))
        for child in (p for p in cgroup.iterdir() if p.is_dir()):
            # A child's controllers are what its parent delegates, at once.
            _write_text(child / "cgroup.controllers", text + "\n" if text else "")
            for controller in enabled:
                for name, content in INTERFACE.get(controller, {}).items():
                    if not (child / name).exists():
                        _write_text(child / name, content + "\n" if content else "")

    def move(self, cgroup: Path, pid: int) -> None:
        for other in self.cgroups(self.root):
            left = [p for p in self.procs(other) if p != pid]
            _write_text(other / "cgroup.procs", "".join(f"{p}\n" for p in left))
        _write_text(cgroup / "cgroup.procs", "".join(f"{p}\n" for p in [*self.procs(cgroup), pid]))

    def kill(self, cgroup: Path) -> None:
        for member in self.cgroups(cgroup):
            for pid in self.procs(member):
                os.kill(pid, signal.SIGKILL)
            _write_text(member / "cgroup.procs", "")
        self.events.append(("kill", self.rel(cgroup)))

    @staticmethod
    def normalise(name: str, value: str, current: str) -> str:
        """What the kernel keeps of a write, as it reads back; OSError(EINVAL) if refused."""
        if name == "cpu.max":
            quota, *rest = value.split()
            period = rest[0] if rest else current.split()[1]
            if len(rest) > 1 or not 1000 <= int(_limit(period, 1)) <= 1_000_000:
                raise _invalid(value)
            return f"{_limit(quota, 1000)} {period}"
        if name in ("memory.max", "memory.swap.max"):
            return value if value == "max" else str(_memparse(value) // PAGE * PAGE)
        if name == "pids.max":
            return _limit(value)
        if name == "cpu.weight":
            if not value.isdigit() or not 1 <= int(value) <= 10_000:
                raise _invalid(value)
            return value
        if name == "io.weight":
            scope, _, weight = value.rpartition(" ")
            if scope != "default" or not weight.isdigit() or not 1 <= int(weight) <= 10_000:
                raise _invalid(value)
            return value
        if name == "io.max":
            return FakeCgroup2.io_max(value, current)
        raise _invalid(value)

    @staticmethod
    def io_max(value: str, current: str) -> str:
        device, *settings = value.split()
        lines = {line.split()[0]: line.split()[1:] for line in current.splitlines() if line}
        known = dict(s.split("=") for s in lines.get(device, [f"{k}=max" for k in IO_KEYS]))
        for setting in settings:
            key, _, amount = setting.partition("=")
            if key not in IO_KEYS:
                raise _invalid(setting)
            known[key] = _limit(amount)
        lines[device] = [f"{k}={known[k]}" for k in IO_KEYS]
        if all(known[k] == "max" for k in IO_KEYS):
            del lines[device]  # a device without limits is not listed
        return "\n".join(f"{d} {' '.join(s)}" for d, s in lines.items())


@pytest.fixture
def make_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make a `FakeCgroup2` at a temporary mount root; Path's mkdir, rmdir, read_text
    and write_text answer like cgroupfs there and as usual elsewhere."""
    fakes: list[FakeCgroup2] = []

    def find(path: Path) -> FakeCgroup2 | None:
        return next((f for f in fakes if f.owns(path)), None)

    def mkdir(self: Path, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        fake = find(self)
        if fake is None:
            return _mkdir(self, mode, parents, exist_ok)
        return fake.mkdir(self, exist_ok)

    def rmdir(self: Path) -> None:
        fake = find(self)
        return _rmdir(self) if fake is None else fake.rmdir(self)

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        fake = find(self)
        return _read_text(self, *args, **kwargs) if fake is None else fake.read(self)

    def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        fake = find(self)
        if fake is None:
            return _write_text(self, data, *args, **kwargs)
        fake.write(self, data)
        return len(data)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(pathlib.Path, "rmdir", rmdir)
    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text)

    def _make(controllers: tuple[str, ...] = KERNEL_ORDER, kill_file: bool = True) -> FakeCgroup2:
        root = tmp_path / f"cgroup2-{len(fakes)}"
        _mkdir(root)
        fakes.append(FakeCgroup2(root, controllers, kill_file))
        return fakes[-1]

    yield _make


def v2_cgroups(fake: FakeCgroup2) -> Cgroups:
    layout = CgroupLayout(unified=fake.root, v1={})
    assert layout.mode == "v2"
    return Cgroups(layout)


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Real processes to put in the fake cgroups; any left are killed after the test."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def sleep_in(cgroups: Cgroups, node: str, sleepers: list[subprocess.Popen[bytes]]) -> int:
    """Make the node's cgroup and start a real process in it; its pid."""
    cgroups.ensure(node)
    sleepers.append(subprocess.Popen(["sleep", "60"]))
    cgroups.procs_files(node)[0].write_text(str(sleepers[-1].pid))
    return sleepers[-1].pid


def test_it_reads_a_v2_mount_as_the_only_hierarchy_with_its_controllers(make_fake: Any) -> None:
    fake = make_fake(("cpu", "io", "memory", "pids"))
    layout = CgroupLayout(unified=fake.root, v1={})

    assert layout.hierarchies() == [fake.root]
    assert layout.controllers == ("cpu", "io", "memory", "pids")


def test_it_enables_controllers_from_the_root_down_before_making_a_nodes_cgroup(
    make_fake: Any,
) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)

    assert cgroups.ensure("lm1/n0") is True

    enabled = "enable cpu io memory pids"
    assert fake.events == [
        ("mkdir", "labmgr"),
        (enabled, "/"),
        (enabled, "labmgr"),
        # The host's ceiling, before any lab's cgroup (test_ceiling.py).
        ("cpu.max", "labmgr"),
        ("memory.max", "labmgr"),
        ("pids.max", "labmgr"),
        ("mkdir", "labmgr/lm1"),
        (enabled, "labmgr/lm1"),
        ("mkdir", "labmgr/lm1/n0"),
    ]
    node = fake.root / "labmgr" / "lm1" / "n0"
    assert (node / "cgroup.controllers").read_text() == "cpu io memory pids\n"
    assert (node / "cgroup.subtree_control").read_text() == ""  # its processes live in it
    assert cgroups.procs_files("lm1/n0") == [node / "cgroup.procs"]


def test_it_enables_only_the_controllers_the_host_has(make_fake: Any) -> None:
    fake = make_fake(("cpu", "memory"))

    v2_cgroups(fake).ensure("lm1/n0")

    node = fake.root / "labmgr" / "lm1" / "n0"
    assert (node / "cgroup.controllers").read_text() == "cpu memory\n"
    assert not (node / "pids.max").exists()


def test_a_second_node_of_the_lab_only_makes_its_own_cgroup(make_fake: Any) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    cgroups.ensure("lm1/n0")
    fake.events.clear()

    assert cgroups.ensure("lm1/n1") is True
    assert cgroups.ensure("lm1/n1") is False

    assert fake.events == [("mkdir", "labmgr/lm1/n1")]


def test_limits_are_written_in_the_v2_formats_and_read_back(make_fake: Any) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    cgroups.ensure("lm1/n0")
    limits = {
        "cpu.max": "50000 100000",
        "cpu.weight": "200",
        "memory.max": "268435456",
        "memory.swap.max": "0",
        "pids.max": "128",
        "io.weight": "default 300",
        "io.max": "8:0 rbps=10485760 wbps=max riops=max wiops=300",
    }

    for key, value in limits.items():
        cgroups.set_limit("lm1/n0", key, value)

    node = fake.root / "labmgr" / "lm1" / "n0"
    assert {key: (node / key).read_text() for key in limits} == {
        key: value + "\n" for key, value in limits.items()
    }
    assert cgroups.read("lm1/n0", "cpu.max") == "50000 100000\n"
    assert cgroups.read("lm1/n0", "io.max") == "8:0 rbps=10485760 wbps=max riops=max wiops=300\n"
    assert cgroups.read("lm1/n0", "no.such.file") is None


def test_no_limit_is_written_as_max(make_fake: Any) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    cgroups.ensure("lm1/n0")

    cgroups.set_limit("lm1/n0", "cpu.max", "max 100000")
    cgroups.set_limit("lm1/n0", "memory.max", "max")
    cgroups.set_limit("lm1/n0", "pids.max", "max")

    assert cgroups.read("lm1/n0", "cpu.max") == "max 100000\n"
    assert cgroups.read("lm1/n0", "memory.max") == "max\n"


def test_a_memory_limit_rounded_down_to_a_page_still_reads_back(make_fake: Any) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    cgroups.ensure("lm1/n0")

    cgroups.set_limit("lm1/n0", "memory.max", "1000000")

    assert cgroups.read("lm1/n0", "memory.max") == "999424\n"


def test_a_limit_the_kernel_refuses_is_reported_with_its_file_and_value(make_fake: Any) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    cgroups.ensure("lm1/n0")

    with pytest.raises(CgroupError) as refused:
        cgroups.set_limit("lm1/n0", "cpu.max", "500 100000")  # below the kernel's 1 ms

    path = fake.root / "labmgr" / "lm1" / "n0" / "cpu.max"
    assert str(refused.value) == f"cannot write '500 100000' to {path}: Invalid argument"


def test_a_limit_whose_controller_the_host_lacks_is_refused(make_fake: Any) -> None:
    fake = make_fake(("cpu", "memory", "pids"))
    cgroups = v2_cgroups(fake)
    cgroups.ensure("lm1/n0")

    with pytest.raises(CgroupError) as refused:
        cgroups.set_limit("lm1/n0", "io.max", "8:0 rbps=1000 wbps=max riops=max wiops=max")

    assert str(refused.value).endswith("/lm1/n0/io.max: No such file or directory")


def test_a_limit_that_does_not_read_back_as_written_is_an_error(make_fake: Any) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    cgroups.ensure("lm1/n0")

    # The kernel lists every key of a device's io.max line: a partial line reads back
    # longer than it was written.
    with pytest.raises(CgroupError) as unread:
        cgroups.set_limit("lm1/n0", "io.max", "8:0 rbps=1000")

    assert str(unread.value).endswith(
        "io.max reads '8:0 rbps=1000 wbps=max riops=max wiops=max' after writing '8:0 rbps=1000'"
    )


def test_processes_of_a_lab_are_listed_from_every_node(
    make_fake: Any, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    first, second = (sleep_in(cgroups, node, sleepers) for node in ("lm1/n0", "lm1/n1"))

    assert cgroups.pids("lm1") == {first, second}
    assert cgroups.pids("lm1/n1") == {second}
    assert cgroups.children() == ["lm1"]


def test_teardown_kills_through_cgroup_kill_then_removes_from_the_bottom_up(
    make_fake: Any, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    for node in ("lm1/n0", "lm1/n1"):
        sleep_in(cgroups, node, sleepers)
    fake.events.clear()

    assert cgroups.kill("lm1") == 2
    assert cgroups.remove("lm1") is True

    assert fake.events[0] == ("kill", "labmgr/lm1")
    assert sorted(fake.events[1:3]) == [("rmdir", "labmgr/lm1/n0"), ("rmdir", "labmgr/lm1/n1")]
    assert fake.events[3:] == [("rmdir", "labmgr/lm1")]
    assert all(not Path(f"/proc/{p.pid}").exists() for p in sleepers)
    assert (fake.root / "labmgr").is_dir()  # other labs' parent stays
    assert cgroups.remove("lm1") is False


def test_without_cgroup_kill_teardown_kills_each_process(
    make_fake: Any, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    fake = make_fake(kill_file=False)  # a kernel older than 5.14
    cgroups = v2_cgroups(fake)
    sleep_in(cgroups, "lm1/n0", sleepers)

    assert cgroups.kill("lm1") == 1

    assert not Path(f"/proc/{sleepers[0].pid}").exists()  # killed, and reaped by teardown
    assert not any(event == "kill" for event, _ in fake.events)
    assert cgroups.remove("lm1") is True


def test_a_cgroup_with_a_live_process_is_not_removed(
    make_fake: Any, sleepers: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = make_fake()
    cgroups = v2_cgroups(fake)
    sleep_in(cgroups, "lm1/n0", sleepers)
    monkeypatch.setattr("workers.kernel.cgroups.time.sleep", lambda _: None)

    with pytest.raises(OSError) as busy:
        cgroups.remove("lm1")

    assert busy.value.errno == errno.EBUSY
    assert (fake.root / "labmgr" / "lm1" / "n0").is_dir()
    assert sleepers[0].poll() is None
