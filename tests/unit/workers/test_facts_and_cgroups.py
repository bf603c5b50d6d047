"""What a plan needs from a host, and how v2 limits are written on a v1/hybrid host."""

from __future__ import annotations

from pathlib import Path

from labplan import ops
from workers.facts import Facts, check_plan
from workers.kernel.cgroups import detect_layout, v1_files

HYBRID = Facts(
    kernel="6.18",
    cgroup_mode="hybrid",
    cgroup_controllers=("blkio", "cpu", "cpuacct", "freezer", "memory", "pids"),
    link_kinds=("veth", "bridge", "macvlan", "vxlan"),
    qdiscs=("tbf", "htb"),
    user_namespaces=True,
    nftables=True,
    iptables=True,
)


def host_plan(*plan_ops: ops.Op) -> ops.HostPlan:
    return ops.HostPlan("local", "lm1", 0x10001, plan_ops)


def test_it_names_each_missing_feature_of_a_plan() -> None:
    plan = host_plan(
        ops.CreateIpvlan("lm1-b0", "lm1-n0", "eth0", "l2", 1500),
        ops.SetShaping("lm1-n0", "eth0", 1_000_000, 20_000, None, None),
        ops.SetCgroupLimit("lm1/n0", "memory.max", "1000"),
        ops.SetCgroupLimit("lm1/n0", "io.weight", "default 100"),
    )

    assert check_plan(HYBRID, plan) == ["ipvlan", "netem"]


def test_io_limits_need_blkio_on_v1_and_io_on_v2() -> None:
    plan = host_plan(ops.SetCgroupLimit("lm1/n0", "io.max", "8:0 rbps=1000"))
    v2 = Facts(**{**HYBRID.to_dict(), "cgroup_mode": "v2", "cgroup_controllers": ("cpu",)})

    assert check_plan(HYBRID, plan) == []
    assert check_plan(v2, plan) == ["cgroup controller io"]


def test_v2_keys_become_v1_files() -> None:
    assert v1_files("cpu.max", "50000 100000") == [
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
    ]
    assert v1_files("memory.max", "max") == [("memory", "memory.limit_in_bytes", "-1")]
    assert v1_files("memory.swap.max", "100", memory_max="1000") == [
        ("memory", "memory.memsw.limit_in_bytes", "1100")
    ]
    assert v1_files("cpu.weight", "100") == [("cpu", "cpu.shares", "2597")]
    assert v1_files("io.weight", "default 10000") == [("blkio", "blkio.weight", "1000")]
    assert v1_files("io.max", "8:0 rbps=10 wiops=max") == [
        ("blkio", "blkio.throttle.read_bps_device", "8:0 10"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 0"),
    ]


def test_it_tells_hybrid_from_v1_and_v2_by_the_mount_table() -> None:
    v1 = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    v2 = "41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"

    assert detect_layout(v1).mode == "v1"
    assert detect_layout(v1).v1 == {
        "cpu": Path("/sys/fs/cgroup/cpu"),
        "cpuacct": Path("/sys/fs/cgroup/cpu"),
    }
    assert detect_layout(v2).mode == "v2"
    assert detect_layout(v1 + v2).mode == "hybrid"
