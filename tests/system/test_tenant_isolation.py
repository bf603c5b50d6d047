"""A tenant against the whole stack: a plain user's lab deployed through the REST API,
attacks run inside its node as the user would run them (the exec API), and messages
forged on the broker by someone who got hold of Redis. Each asserts what the attacker
sees and that nothing changed on the host."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from labplan import envelope, naming
from tests.system.conftest import Stack, wait_for
from tests.system.test_live_deployments import (
    FINAL,
    TWO_NODES,
    deploy,
    destroy_clean,
    kernel_objects,
    lab_from,
    wait_status,
)

SUBNET, GATEWAY = "10.77.0.0/24", "10.77.0.1"


def run(stack: Stack, deployment: int, node: str, *argv: str) -> dict[str, Any]:
    response = stack.post(
        "alice",
        f"/api/deployments/{deployment}/exec",
        json={"node": node, "argv": list(argv), "timeout": 15},
    )
    assert response.status_code == 200, response.text
    outcome: dict[str, Any] = response.json()
    return outcome


def connects(stack: Stack, deployment: int, address: str, port: int) -> str:
    """What a TCP connection from the node to address:port ends in."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), 3).close(); print('connected')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    return str(run(stack, deployment, "alice", "python3", "-c", probe)["stdout"]).strip()


def test_from_a_plain_users_node_the_hosts_secrets_and_services_are_out_of_reach(
    stack: Stack,
) -> None:
    tree = copy.deepcopy(TWO_NODES)
    tree["networks"]["lan"]["subnet"] = SUBNET
    for node in tree["nodes"].values():  # the stack's host, not one another test left behind
        node["host"] = stack.host
    lab = lab_from(stack, tree, "sys-tenant")
    body = deploy(stack, lab)
    deployment, token = body["id"], body["token"]
    if wait_status(stack, deployment, FINAL) != "running":
        pytest.fail(json.dumps(stack.get("alice", f"/api/deployments/{deployment}/").json()))
    data = stack.env["LABMGR_DATA_DIR"]
    agent_data = stack.env["LABMGR_AGENT_DATA_DIR"]
    try:
        paths = ["/etc/shadow", f"{data}/secret_key", f"{agent_data}/host.key"]
        for path in paths:
            text = Path(path).read_text()
            read = run(stack, deployment, "alice", "cat", path)
            assert read["exit"] != 0, path
            assert "Permission denied" in read["stderr"], (path, read["stderr"])
            assert text.strip() not in read["stdout"]
        listing = run(stack, deployment, "alice", "ls", agent_data)
        assert listing["exit"] != 0 and "Permission denied" in listing["stderr"]
        # /root is the node's own home, empty: none of host root's files show in it.
        host_root = {p.name for p in Path("/root").iterdir()}
        home = run(stack, deployment, "alice", "ls", "-A", "/root")
        assert host_root and not host_root & set(home["stdout"].split())
        owner = run(stack, deployment, "alice", "stat", "-c", "%u:%g", "/etc/passwd")
        assert owner["stdout"].strip() == "65534:65534"  # host root is nobody in here

        # The broker and the web server, on the host's loopback and through the gateway.
        web_port = int(stack.base.rsplit(":", 1)[1])
        for port in (stack.redis_port, web_port):
            for address in ("127.0.0.1", GATEWAY):
                assert connects(stack, deployment, address, port) != "connected", (address, port)
        # The node still reaches its own lab.
        assert run(stack, deployment, "alice", "ping", "-c1", "-W2", "bob")["exit"] == 0
    finally:
        destroy_clean(stack, lab, token, deployment)


def broker(stack: Stack) -> Celery:
    """A client of the stack's Redis, as someone who stole its password would have."""
    url = f"redis://:{stack.redis_password}@127.0.0.1:{stack.redis_port}/0"
    app = Celery("intruder", broker=url, backend=url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    return app


def agent_log(stack: Stack) -> str:
    return stack.agent.log.read_text(errors="replace")


def test_messages_forged_on_the_broker_build_nothing_and_invent_no_host(stack: Stack) -> None:
    intruder = broker(stack)
    deployment = 9_000_000 + int(time.time()) % 100_000
    token = naming.deployment_token(deployment)
    plan = {
        "version": 1,
        "lab": "forged",
        "deployment": token,
        "hosts": [{"host": stack.host, "deployment": token, "group": 4242, "ops": []}],
    }
    apply_id, exec_id = uuid.uuid4().hex, uuid.uuid4().hex

    intruder.send_task(
        "labmgr.agent.apply",
        kwargs={"deployment": deployment, "plan": plan, "previous": None},
        queue=f"host.{stack.host}",
        task_id=apply_id,
    )
    intruder.send_task(
        "labmgr.agent.exec",
        kwargs={"signed": {"body": '{"v":1}', "mac": "0" * 64}},
        queue=f"host.{stack.host}",
        task_id=exec_id,
    )
    beat = {"host": "intruder", "facts": {}, "tokens": [], "sent": time.time()}
    intruder.send_task("labmgr.control.heartbeat", kwargs=beat, queue="control")
    guessed = envelope.seal(
        bytes(32),
        task="labmgr.control.heartbeat",
        host="intruder",
        id=uuid.uuid4().hex,
        issued=time.time(),
        kwargs=beat,
    )
    intruder.send_task("labmgr.control.heartbeat", kwargs={"signed": guessed}, queue="control")

    wait_for(
        "the agent to refuse both messages",
        lambda: (
            f"refused labmgr.agent.apply {apply_id}" in agent_log(stack)
            and f"refused labmgr.agent.exec {exec_id}" in agent_log(stack)
        ),
        timeout=30,
    )
    assert kernel_objects(token) == []
    control = next(p for p in stack.others if p.name == "control")
    wait_for(
        "the control worker to refuse the heartbeat",
        lambda: (
            "host 'intruder' is not registered" in control.log.read_text(errors="replace")
            and "the message is not signed" in control.log.read_text(errors="replace")
        ),
        timeout=30,
    )
    hosts = [h["slug"] for h in stack.get("alice", "/api/hosts/").json()["results"]]
    assert "intruder" not in hosts and stack.host in hosts
