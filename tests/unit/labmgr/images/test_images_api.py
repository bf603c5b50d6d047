"""`/api/hosts/{id}/images`: what a host's store holds, as each user may see it, and the
admins' actions on it (pull, remove, prune, upload an archive for the host to load). A
non-admin's action is a 403 that says who may; every bad input is a 400 naming the
field; an upload's chunks land on a real redis-server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.deployments.models import Deployment
from labmgr.hosts.models import Host
from labmgr.images import dispatch
from labmgr.images.models import RegistryLogin
from labmgr.labs.models import Lab
from labplan import envelope
from labplan.messages import image_upload_key
from tests.unit.labmgr.conftest import Dispatched

Api = Callable[[User | None], APIClient]
ALPINE = "docker.io/library/alpine:3.20"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


class Agent:
    """Records the image jobs the control plane sends, as (job, host, kwargs)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Agent:
    record = Agent()
    for job in ("image_pull", "image_remove", "image_prune", "image_load"):

        def send(*, host: str, _job: str = job, **kwargs: Any) -> None:
            record.sent.append((_job, host, kwargs))

        monkeypatch.setattr(dispatch, job, send)
    return record


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    def call(client: APIClient, method: str, url: str, data: Any = None, **kw: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(url, data, **({"format": "json"} | kw))

    return call


@pytest.fixture
def running(alice_lab: Lab, alice: User, online_host: Host, dispatched: Dispatched) -> Deployment:
    deployment = deployment_deploy(lab=alice_lab, actor=alice)
    Host.objects.filter(pk=online_host.pk).update(
        images=[
            {
                "digest": DIGEST_A,
                "refs": [ALPINE],
                "size": 3_500_000,
                "last_used": 1_700_000_000.0,
                "tokens": [deployment.token, "lm999"],
            },
            {
                "digest": DIGEST_B,
                "refs": [],
                "size": 10,
                "last_used": 1_600_000_000.0,
                "tokens": [],
            },
        ]
    )
    return deployment


def url(host: Host, tail: str = "") -> str:
    return f"/api/hosts/{host.pk}/images{tail}"


# --- reading -------------------------------------------------------------------------------


def test_the_owner_sees_each_image_and_the_deployments_of_hers_that_run_it(
    api: Api, alice: User, online_host: Host, running: Deployment
) -> None:
    body = api(alice).get(url(online_host)).json()
    assert (body["slug"], body["status"]) == ("local", "online")
    first, second = body["images"]
    assert (first["refs"], first["digest"], first["size"]) == ([ALPINE], DIGEST_A, 3_500_000)
    assert first["deployments"] == [
        {"id": running.pk, "lab": running.lab_id, "lab_name": "demo", "status": "pending"}
    ]
    assert first["other_deployments"] == 0  # lm999 is no deployment of this control plane
    assert (second["refs"], second["deployments"]) == ([], [])


def test_another_user_sees_the_image_but_only_counts_deployments_not_theirs(
    api: Api, charlie: User, root: User, online_host: Host, running: Deployment
) -> None:
    image = api(charlie).get(url(online_host)).json()["images"][0]
    assert (image["deployments"], image["other_deployments"]) == ([], 1)
    image = api(root).get(url(online_host)).json()["images"][0]
    assert [d["lab_name"] for d in image["deployments"]] == ["demo"]


def test_an_unknown_host_is_a_404_and_the_anonymous_a_401(api: Api, alice: User) -> None:
    assert api(alice).get("/api/hosts/999/images").status_code == 404
    assert api(None).get("/api/hosts/999/images").status_code == 401


# --- admins' actions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "data"),
    [
        ("/pull", {"ref": "alpine"}),
        ("/remove", {"refs": [ALPINE]}),
        ("/prune", {}),
        ("/uploads", {"size": 10}),
    ],
)
def test_a_non_admins_action_is_refused_saying_who_may(
    api: Api, run: Any, alice: User, online_host: Host, agent: Agent, tail: str, data: Any
) -> None:
    response = run(api(alice), "post", url(online_host, tail), data)
    assert response.status_code == 403
    assert "Only an admin may" in response.json()["detail"]
    assert agent.sent == []


def test_an_admin_pulls_a_reference_with_its_registrys_login_sealed(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent
) -> None:
    RegistryLogin.objects.create(registry="registry.example:5000", username="ci", password="pw")
    ref = "registry.example:5000/team/router:1"
    response = run(api(root), "post", url(online_host, "/pull"), {"ref": ref})
    assert response.status_code == 202, response.json()
    assert response.json()["refs"] == [ref]
    (job, host, kwargs) = agent.sent[0]
    assert (job, host, kwargs["ref"]) == ("image_pull", "local", ref)
    logins = json.loads(envelope.open_secret(bytes.fromhex(online_host.key), kwargs["registries"]))
    assert logins == [{"registry": "registry.example:5000", "username": "ci", "password": "pw"}]
    page = api(root).get(url(online_host)).json()
    assert (page["last_action"], page["last_action_ok"]) == (f"pull: {ref} asked for", None)


def test_a_short_reference_is_pulled_as_its_canonical_name(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent
) -> None:
    run(api(root), "post", url(online_host, "/pull"), {"ref": "alpine:3.20"})
    assert agent.sent[0][2] == {"ref": ALPINE, "registries": ""}


def test_removal_names_references_and_digests_and_prune_all_is_the_default(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent
) -> None:
    run(api(root), "post", url(online_host, "/remove"), {"refs": ["alpine:3.20", DIGEST_B]})
    run(api(root), "post", url(online_host, "/prune"), {})
    run(api(root), "post", url(online_host, "/prune"), {"all": False})
    assert agent.sent == [
        ("image_remove", "local", {"refs": [ALPINE, DIGEST_B]}),
        ("image_prune", "local", {"all": True}),
        ("image_prune", "local", {"all": False}),
    ]


@pytest.mark.parametrize(
    ("tail", "data", "field"),
    [
        ("/pull", {}, "ref"),
        ("/pull", {"ref": ""}, "ref"),
        ("/pull", {"ref": 7}, "ref"),
        ("/pull", {"ref": "Alpine/UPPER:tag"}, "ref"),
        ("/pull", {"ref": "alpine:bad tag"}, "ref"),
        ("/pull", {"ref": "alpine@sha256:123"}, "ref"),
        ("/remove", {}, "refs"),
        ("/remove", {"refs": []}, "refs"),
        ("/remove", {"refs": {"a": 1}}, "refs"),
        ("/remove", {"refs": [ALPINE, 5]}, "refs.1"),
        ("/remove", {"refs": ["x" * 101 for _ in range(101)]}, "refs"),
        ("/prune", {"all": "yes"}, "all"),
        ("/uploads", {}, "size"),
        ("/uploads", {"size": "10"}, "size"),
        ("/uploads", {"size": 0}, "size"),
        ("/uploads", {"size": 2**40}, "size"),
        ("/uploads", {"size": 10, "sha256": "XYZ"}, "sha256"),
        ("/uploads", {"size": 10, "name": "Bad Name"}, "name"),
    ],
)
def test_every_bad_input_is_a_400_naming_its_field(
    api: Api,
    run: Any,
    root: User,
    online_host: Host,
    agent: Agent,
    tail: str,
    data: Any,
    field: str,
) -> None:
    response = run(api(root), "post", url(online_host, tail), data)
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == [field]
    assert agent.sent == []


def test_a_body_that_is_not_an_object_is_a_400(
    api: Api, run: Any, root: User, online_host: Host
) -> None:
    response = run(api(root), "post", url(online_host, "/pull"), ["alpine"])
    assert response.status_code == 400
    assert response.json()["detail"] == "The request body is a JSON object."


def test_an_action_on_an_offline_host_is_a_409_and_sends_nothing(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent
) -> None:
    Host.objects.filter(pk=online_host.pk).update(status="offline")
    response = run(api(root), "post", url(online_host, "/prune"), {})
    assert response.status_code == 409
    assert response.json()["errors"] == {"host": ["Host local is offline."]}
    assert agent.sent == []


# --- uploads -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A redis-server of the test module's own on a unix socket (no port)."""
    directory = tmp_path_factory.mktemp("redis")
    socket = directory / "redis.sock"
    argv = ["redis-server", "--port", "0", "--unixsocket", str(socket)]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(socket))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield socket
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def store(redis_socket: Path, settings: Any) -> redis.Redis:
    settings.REDIS_URL = f"unix://{redis_socket}"
    client = redis.Redis(unix_socket_path=str(redis_socket))
    client.flushall()
    return client


def upload(
    api: Api, run: Any, root: User, host: Host, archive: bytes, **start: Any
) -> tuple[str, list[Any]]:
    """Start an upload and send its chunks of 1 MiB; the key and each chunk's answer."""
    started = run(api(root), "post", url(host, "/uploads"), {"size": len(archive), **start})
    assert started.status_code == 201, started.json()
    key = started.json()["upload"]
    step = started.json()["chunk_max"]
    answers = [
        run(
            api(root),
            "put",
            url(host, f"/uploads/{key}/chunks/{i // step}"),
            archive[i : i + step],
            content_type="application/octet-stream",
            format=None,
        )
        for i in range(0, len(archive), step)
    ]
    return key, answers


ARCHIVE = bytes(range(256)) * 9000  # 2.2 MiB: three chunks


def test_an_uploaded_archive_reaches_redis_in_chunks_and_goes_to_the_host_to_load(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent, store: redis.Redis
) -> None:
    key, answers = upload(
        api,
        run,
        root,
        online_host,
        ARCHIVE,
        sha256=hashlib.sha256(ARCHIVE).hexdigest(),
        name="router:1",
    )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[-1].json()["received"] == len(ARCHIVE)
    assert b"".join(store.lrange(image_upload_key(key), 0, -1)) == ARCHIVE
    response = run(api(root), "post", url(online_host, f"/uploads/{key}/load"))
    assert response.status_code == 202, response.json()
    assert agent.sent == [
        (
            "image_load",
            "local",
            {
                "upload": key,
                "chunks": 3,
                "sha256": hashlib.sha256(ARCHIVE).hexdigest(),
                "name": "docker.io/library/router:1",
            },
        )
    ]
    again = run(api(root), "post", url(online_host, f"/uploads/{key}/load"))
    assert list(again.json()["errors"]) == ["upload"]  # sent once


def test_an_upload_without_a_hash_is_hashed_as_it_arrived(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent, store: redis.Redis
) -> None:
    key, _ = upload(api, run, root, online_host, b"tiny archive")
    run(api(root), "post", url(online_host, f"/uploads/{key}/load"))
    assert agent.sent[0][2]["sha256"] == hashlib.sha256(b"tiny archive").hexdigest()
    assert agent.sent[0][2]["name"] is None


def test_an_archive_that_does_not_hash_as_announced_is_dropped(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent, store: redis.Redis
) -> None:
    key, _ = upload(api, run, root, online_host, b"tiny archive", sha256="0" * 64)
    response = run(api(root), "post", url(online_host, f"/uploads/{key}/load"))
    assert response.status_code == 400
    assert "hashes to" in response.json()["errors"]["sha256"][0]
    assert store.exists(image_upload_key(key)) == 0
    assert agent.sent == []


def test_chunks_out_of_order_past_the_size_or_missing_are_refused_naming_them(
    api: Api, run: Any, root: User, online_host: Host, agent: Agent, store: redis.Redis
) -> None:
    started = run(api(root), "post", url(online_host, "/uploads"), {"size": 5})
    key = started.json()["upload"]

    def put(n: int, data: bytes) -> Any:
        return run(
            api(root),
            "put",
            url(online_host, f"/uploads/{key}/chunks/{n}"),
            data,
            content_type="application/octet-stream",
            format=None,
        )

    assert put(1, b"ab").json()["errors"] == {
        "chunk": ["Chunk 1 is out of order: chunk 0 comes next."]
    }
    assert list(put(0, b"").json()["errors"]) == ["chunk"]
    assert list(put(0, b"abcdef").json()["errors"]) == ["chunk"]
    assert put(0, b"abc").status_code == 200
    early = run(api(root), "post", url(online_host, f"/uploads/{key}/load"))
    assert early.json()["errors"] == {"size": ["3 of the archive's 5 bytes have arrived."]}
    assert put(1, b"de").status_code == 200
    store.delete(image_upload_key(key))  # the chunks expired meanwhile
    lost = run(api(root), "post", url(online_host, f"/uploads/{key}/load"))
    assert (lost.status_code, list(lost.json()["errors"])) == (409, ["upload"])
    assert agent.sent == []


def test_another_admin_cannot_write_into_someone_elses_upload(
    api: Api, run: Any, root: User, online_host: Host, store: redis.Redis
) -> None:
    other = User.objects.create_superuser("root2", "r2@example.org", "pw")
    key = run(api(root), "post", url(online_host, "/uploads"), {"size": 5}).json()["upload"]
    response = run(
        api(other),
        "put",
        url(online_host, f"/uploads/{key}/chunks/0"),
        b"abc",
        content_type="application/octet-stream",
        format=None,
    )
    assert (response.status_code, list(response.json()["errors"])) == (400, ["upload"])


def test_an_action_the_broker_cannot_take_says_so_on_the_host(
    api: Api, run: Any, root: User, online_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(**kwargs: Any) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(dispatch, "image_prune", down)
    response = run(api(root), "post", url(online_host, "/prune"), {})
    assert response.status_code == 202
    page = api(root).get(url(online_host)).json()
    assert page["last_action_ok"] is False
    assert page["last_action"] == (
        "prune: could not be sent to the host: Error 111 connecting to 127.0.0.1:6379"
    )
