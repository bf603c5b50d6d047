"""The job's network namespaces: each gets its sysctls, written through a proc instance
of its own or, where the kernel refuses the new mount API, through /proc."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from labplan import naming
from tests.kernel.conftest import new_deployment
from workers.kernel import netns, syscalls

PING = Path("/proc/sys/net/ipv4/ping_group_range")
IPV6_DEFAULT = Path("/proc/sys/net/ipv6/conf/default/disable_ipv6")


@pytest.mark.parametrize("mount_api", [True, False], ids=["own proc", "through /proc"])
def test_a_namespace_gets_its_sysctls_and_the_host_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch, mount_api: bool
) -> None:
    if not mount_api:

        def refused(fstype: str) -> int:
            raise OSError(errno.ENOSYS, "fsopen: Function not implemented")

        monkeypatch.setattr(syscalls, "fsmount", refused)
    name = f"{naming.deployment_token(new_deployment())}-n0"
    host = (PING.read_text(), IPV6_DEFAULT.read_text())
    with netns.Namespaces() as namespaces:
        try:
            assert namespaces.ensure(name)
            with namespaces.entered(name):
                assert PING.read_text().split() == ["0", "2147483647"]
                assert IPV6_DEFAULT.read_text() == "1\n"
        finally:
            namespaces.remove(name)
    assert (PING.read_text(), IPV6_DEFAULT.read_text()) == host
    assert not os.path.exists(f"/run/netns/{name}")
