"""A node that joins another's network namespace (`network_mode: container:NODE`), on the
real kernel: it sees that node's interfaces and addresses and reaches what it reaches,
keeps its own hostname, processes and cgroup, and answers on localhost to the other;
a redeploy that drops it leaves the owner running with its namespace, and one that makes
the owner again makes it again inside the new namespace."""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

from .conftest import PYTHON, Lab, compile_dict, leftovers
from .test_redeploy import Redeploys, _result

POD: dict[str, Any] = {
    "labfile": 2,
    "name": "pod",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.213.91.0/24"}},
    "nodes": {
        "app": {"networks": {"lan": {}}},
        "peer": {"networks": {"lan": {}}},
        "sidecar": {"network_mode": "container:app"},
    },
}
SERVE = (
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 7000)); s.listen(1);"
    " c, _ = s.accept(); c.sendall(b'from-app'); time.sleep(1)"
)
ASK = (
    "import socket, time\n"
    "for _ in range(50):\n"
    "    try:\n"
    "        print(socket.create_connection(('127.0.0.1', 7000), 1).recv(64).decode()); break\n"
    "    except OSError: time.sleep(0.1)\n"
)


def netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_a_node_in_anothers_netns_shares_its_network_and_nothing_else(build: Any) -> None:
    lab: Lab = build(POD)

    app, sidecar = lab.pid("app"), lab.pid("sidecar")
    assert netns_inode(app) == netns_inode(sidecar)
    assert os.stat(f"/proc/{app}/ns/pid").st_ino != os.stat(f"/proc/{sidecar}/ns/pid").st_ino
    addresses = lab.run("sidecar", "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert "10.213.91.2/24" in addresses  # app's address, app's interface
    assert lab.run("sidecar", "hostname").stdout.strip() == "sidecar"
    assert lab.ping("sidecar", "10.213.91.3")  # the peer, over app's link
    assert "10.213.91.2\tsidecar" in lab.run("peer", "cat", "/etc/hosts").stdout

    # localhost is one for both, as in a pod: a service of app answers sidecar there.
    serving = threading.Thread(target=lambda: lab.run("app", PYTHON, "-c", SERVE, timeout=20))
    serving.start()
    answer = lab.run("sidecar", PYTHON, "-c", ASK).stdout
    serving.join(30)
    assert answer.strip() == "from-app"


def test_redeploys_keep_the_owners_netns_and_remake_the_nodes_in_it(data_dir: Path) -> None:
    run = Redeploys(data_dir)
    first = run.apply(POD, "p1")
    try:
        without = copy.deepcopy(POD)
        del without["nodes"]["sidecar"]
        second = run.apply(without, "p2", previous=_plan(run, POD))
        assert second["app"]["pid"] == first["app"]["pid"]  # kept, with its namespace
        assert not os.path.exists(f"/proc/{first['sidecar']['pid']}")
        lab = Lab(run.executor, run.token, _result(run.executor, run.token))
        assert lab.ping("app", "10.213.91.3")

        third = run.apply(POD, "p3", previous=_plan(run, without))
        changed = copy.deepcopy(POD)
        changed["nodes"]["app"]["limits"] = {"pids": 64}
        fourth = run.apply(changed, "p4", previous=_plan(run, POD))
        assert fourth["app"]["pid"] != third["app"]["pid"]
        assert fourth["sidecar"]["pid"] != third["sidecar"]["pid"]  # made again with it
        assert netns_inode(fourth["app"]["pid"]) == netns_inode(fourth["sidecar"]["pid"])
    finally:
        run.agent.run("p5", "destroy", {"deployment": run.deployment, "token": run.token})
    assert run.sent[-1][1]["ok"] is True
    assert leftovers(run.token) == []


def _plan(run: Redeploys, data: dict[str, Any]) -> dict[str, Any]:
    return compile_dict(data, run.deployment)
