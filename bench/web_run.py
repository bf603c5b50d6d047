"""The web targets of PERF.md, on the same stack as the API run (bench.api_run):

- the lab list of 1,000 labs under 20 concurrent clients: p95 of `GET /api/labs/?page=N`
  over a few seconds of load, every client with its own connection;
- 50 websocket clients on one lab's stream while the lab is deployed and destroyed: each
  must receive every status event the deployment went through, in order.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import requests
from websockets.sync.client import connect

from bench.api_run import ROOT, ApiStack

FINAL = {"running", "failed"}
GONE = {"destroyed", "failed"}


def seed_labs(stack: ApiStack, count: int) -> None:
    """`count` two-node labs owned by the bench user, made by the labs service in one
    process (as many imports would make them, without a request per lab)."""
    script = (
        "from django.contrib.auth.models import User\n"
        "from labmgr.labs.services import lab_create\n"
        "owner = User.objects.get(username='bench')\n"
        f"for i in range({count}):\n"
        "    lab_create(owner=owner, labfile_tree={'labfile': 1, 'name': f'list-{i}',"
        " 'networks': {'lan': {'driver': 'bridge', 'subnet': '10.50.0.0/24'}},"
        " 'nodes': {'a': {'networks': {'lan': {}}}, 'b': {'networks': {'lan': {}}}}})\n"
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "shell", "-c", script], env=stack.env, check=True, cwd=ROOT)


def lab_list_latencies(stack: ApiStack, clients: int, seconds: float) -> list[float]:
    """Seconds per `GET /api/labs/?page=N` (random pages), `clients` at once."""
    pages = -(-int(stack.session.get(f"{stack.base}/api/labs/", timeout=30).json()["count"]) // 50)
    token = stack.session.headers["Authorization"]
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    errors: list[str] = []

    def client(seed: int) -> None:
        pick = random.Random(seed)
        with requests.Session() as session:
            session.headers["Authorization"] = token
            while time.monotonic() < deadline:
                url = f"{stack.base}/api/labs/?page={pick.randint(1, pages)}"
                began = time.perf_counter()
                response = session.get(url, timeout=30)
                took = time.perf_counter() - began
                if response.status_code != 200:
                    errors.append(f"{url}: {response.status_code}")
                    return
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"bench: the lab list failed under load: {errors[:3]}")
    return latencies


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def status_fanout(stack: ApiStack, clients: int) -> dict[str, Any]:
    """Deploy and destroy a small lab with `clients` browsers on its stream; how many saw
    every status the deployment went through, in order."""
    lab = stack.create_lab(
        {
            "labfile": 1,
            "name": "fanout",
            "networks": {"lan": {"driver": "bridge", "subnet": "10.51.0.0/24"}},
            "nodes": {"a": {"networks": {"lan": {}}}, "b": {"networks": {"lan": {}}}},
        }
    )
    url = f"{stack.base.replace('http', 'ws', 1)}/ws/labs/{lab}/"
    headers = {"Cookie": f"sessionid={stack.session_key}", "Origin": stack.base}
    seen: list[list[str]] = [[] for _ in range(clients)]
    ready = threading.Barrier(clients + 1)

    def watch(index: int) -> None:
        with connect(url, additional_headers=headers, open_timeout=30) as events:
            ready.wait()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                event = json.loads(events.recv(timeout=deadline - time.monotonic()))
                if event.get("type") != "deployment.status":
                    continue
                seen[index].append(event["status"])
                if event["status"] in GONE and len(seen[index]) > 1:
                    return

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    response = stack.session.post(f"{stack.base}/api/labs/{lab}/deploy", timeout=60)
    response.raise_for_status()
    deployment = int(response.json()["id"])
    _wait_status(stack, deployment, FINAL)
    stack.session.post(f"{stack.base}/api/labs/{lab}/destroy", timeout=60).raise_for_status()
    for thread in threads:
        thread.join(timeout=300)
    # What happened, as the database recorded it: a "status" step per transition, its
    # message "deploying -> running: reason".
    detail = stack.session.get(f"{stack.base}/api/deployments/{deployment}/", timeout=30).json()
    reference = [
        step["message"].split(" -> ", 1)[1].split(":", 1)[0]
        for step in sorted(detail["steps"], key=lambda step: step["seq"])
        if step["name"] == "status"
    ]
    return {
        "clients": clients,
        "complete": sum(1 for statuses in seen if statuses == reference),
        "statuses": reference,
    }


def _wait_status(stack: ApiStack, deployment: int, wanted: set[str]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        url = f"{stack.base}/api/deployments/{deployment}/"
        if stack.session.get(url, timeout=30).json()["status"] in wanted:
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: deployment {deployment} did not reach {sorted(wanted)}")
