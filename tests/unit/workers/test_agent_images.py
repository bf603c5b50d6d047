"""The agent's image jobs as the control plane sends them: signed pulls, removals, prunes
and loads (refused when forged, answered once), registry logins sealed under the host's
key, the `images` report each ends with, uploaded archives read from a real Redis, and
the store's listing in the heartbeat. The store is a small in-memory one that keeps to
workers.images' contract; the kernel is the in-memory one."""

from __future__ import annotations

import hashlib
import json
import os
import time
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis

from labplan import envelope, ops
from labplan.messages import (
    ControlTask,
    ImageFact,
    ImagesArgs,
    RegistryLogin,
    image_upload_key,
)
from tests.unit.workers.fake_kernel import ALL_FACTS, FakeKernel
from tests.unit.workers.labs import plan_dict
from tests.unit.workers.signing import KEY, OTHER_KEY, FakeApp, host_signer, opened, signed
from tests.unit.workers.test_agent_images_transfer import redis_client  # noqa: F401 (fixture)
from workers.agent import Agent
from workers.daemon import Heartbeat
from workers.executor import Executor, Step
from workers.images.store import ImageError
from workers.images.transfer import Uploads
from workers.reports import Reporter, StepGroups
from workers.tasks import celery_send, register

PULL = "labmgr.agent.image_pull"
REMOVE = "labmgr.agent.image_remove"
PRUNE = "labmgr.agent.image_prune"
LOAD = "labmgr.agent.image_load"
APPLY = "labmgr.agent.apply"
DESTROY = "labmgr.agent.destroy"
ALPINE = "docker.io/library/alpine:3.20"
ALPINE_DIGEST = "sha256:" + "a1" * 32
FRR = "docker.io/frrouting/frr:v8.4.1"
FRR_DIGEST = "sha256:" + "f2" * 32
UPLOAD = "u" * 32  # an unguessable id, as the control plane makes them
PULL_ID = "0f" * 16


# --- an image store keeping to the contract of workers.images ---------------------------


@dataclass(frozen=True)
class FakeImage:
    ref: str
    digest: str
    size: int = 1000


@dataclass
class FakeStore:
    """Images by digest; what the registry offers by reference; every call recorded."""

    registry: dict[str, str] = field(default_factory=lambda: {ALPINE: ALPINE_DIGEST})
    present: dict[str, FakeImage] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    loaded: list[bytes] = field(default_factory=list)

    def ensure(
        self,
        ref: str,
        digest: str | None = None,
        *,
        logins: Sequence[RegistryLogin] = (),
        progress: Any = None,
    ) -> FakeImage:
        self.calls.append(("ensure", (ref, list(logins))))
        if ref not in self.registry:
            raise ImageError(ref, "no such image in docker.io")
        image = FakeImage(ref, self.registry[ref])
        self.present[image.digest] = image
        return image

    def touch(self, digest: str) -> None:
        pass

    def images(self, in_use: Mapping[str, Sequence[str]] = {}) -> list[ImageFact]:
        self.calls.append(("images", dict(in_use)))
        return [
            {
                "digest": image.digest,
                "refs": [image.ref],
                "size": image.size,
                "last_used": 1.0,
                "tokens": list(in_use.get(image.digest, [])),
            }
            for image in self.present.values()
        ]

    def remove(
        self, refs: Sequence[str], in_use: Mapping[str, Sequence[str]]
    ) -> tuple[list[str], list[str]]:
        self.calls.append(("remove", (list(refs), dict(in_use))))
        removed, kept = [], []
        for ref in refs:
            image = next((i for i in self.present.values() if ref in (i.ref, i.digest)), None)
            if image is None:
                kept.append(f"{ref}: no such image on this host")
            elif in_use.get(image.digest):
                kept.append(f"{ref}: used by {', '.join(in_use[image.digest])}")
            else:
                del self.present[image.digest]
                removed.append(image.ref)
        return removed, kept

    def prune(self, in_use: Mapping[str, Sequence[str]], *, all: bool) -> list[str]:
        self.calls.append(("prune", (dict(in_use), all)))
        unused = [i for d, i in self.present.items() if not in_use.get(d)]
        for image in unused:
            del self.present[image.digest]
        return [i.ref for i in unused]

    def load(self, archive: Path, name: str | None = None) -> list[FakeImage]:
        mode = archive.stat().st_mode & 0o777
        self.calls.append(("load", (archive.parent, mode, name)))
        data = archive.read_bytes()
        self.loaded.append(data)
        if not data.startswith(b"archive"):
            raise ImageError(str(archive.name), "not a docker save or OCI archive")
        image = FakeImage(name or FRR, FRR_DIGEST, len(data))
        self.present[image.digest] = image
        return [image]

    def called(self, method: str) -> list[Any]:
        return [args for name, args in self.calls if name == method]


# --- the agent bound to a fake Celery app ------------------------------------------------


class Stack:
    """An agent bound to a fake Celery app, as `python -m workers agent` binds it."""

    def __init__(self, kernel: FakeKernel, data: Path, uploads: Uploads | None = None) -> None:
        self.app = FakeApp()
        self.store = FakeStore()
        self.signer = host_signer(data)
        self.executor = Executor(
            data,
            kernel.driver,
            facts=ALL_FACTS,
            images=lambda: self.store,  # type: ignore[arg-type, return-value]
        )
        self.agent = Agent(
            self.executor,
            celery_send(self.app, self.signer),
            "local",
            signer=self.signer,
            uploads=uploads,
        )
        register(self.app, self.agent, self.signer)

    def deliver(self, task: str, kwargs: dict[str, Any], **how: Any) -> Any:
        request, message = signed(task, kwargs, **how)
        return self.app.tasks[task](request, **message)

    def reports(self, task: str = ControlTask.IMAGES) -> list[dict[str, Any]]:
        return [opened(kw, name) for name, kw, _, _ in self.app.sent if name == task]

    def report(self) -> dict[str, Any]:
        [report] = self.reports()
        return report

    def used_by(self, token: str, ref: str, digest: str) -> None:
        """The deployment's nodes run this image (its apply's pull step journals so)."""
        self.executor.journal.append(token, {"image": ref, "digest": digest})


@pytest.fixture
def stack(kernel: FakeKernel, tmp_path: Path) -> Stack:
    return Stack(kernel, tmp_path)


def sealed(logins: object, key: bytes = KEY) -> str:
    return envelope.seal_secret(key, json.dumps(logins).encode())


LOGINS: list[RegistryLogin] = [
    {"registry": "registry.example:5000", "username": "alice", "password": "s3cret"}
]


def assert_images_args(report: dict[str, Any]) -> None:
    """The report has exactly messages.ImagesArgs' fields, of their types."""
    hints = typing.get_type_hints(ImagesArgs)
    assert set(report) == set(hints)
    assert isinstance(report["host"], str) and report["host"]
    assert report["action"] in typing.get_args(hints["action"])
    assert isinstance(report["ok"], bool)
    assert isinstance(report["error"], str) and isinstance(report["message"], str)
    image_fields = set(typing.get_type_hints(ImageFact))
    assert all(set(image) == image_fields for image in report["images"])


# --- pull: signed, sealed logins, answered once ----------------------------------------


def test_a_signed_pull_pulls_the_image_and_reports_the_whole_store(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})

    report = stack.report()
    assert_images_args(report)
    assert report["action"] == "pull" and report["ok"] is True and report["error"] == ""
    assert report["message"] == f"pulled {ALPINE} ({ALPINE_DIGEST})"
    assert report["host"] == "local"
    assert [i["digest"] for i in report["images"]] == [ALPINE_DIGEST]


def test_a_pull_signed_with_another_key_is_refused_unanswered(stack: Stack) -> None:
    answer = stack.deliver(PULL, {"ref": ALPINE, "registries": ""}, key=OTHER_KEY)

    assert "refused" in answer
    assert stack.reports() == [] and stack.store.called("ensure") == []


def test_a_pull_for_another_host_is_refused(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""}, host="elsewhere")

    assert stack.reports() == [] and stack.store.called("ensure") == []


def test_a_pull_delivered_twice_pulls_once_and_answers_again(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""}, id=PULL_ID)
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""}, id=PULL_ID)

    assert len(stack.store.called("ensure")) == 1
    first, again = stack.reports()
    assert first == again and first["ok"] is True


def test_a_stale_pull_is_refused(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""}, issued=time.time() - 3600)

    assert stack.reports() == [] and stack.store.called("ensure") == []


def test_sealed_logins_reach_the_store_and_never_the_job_record(
    stack: Stack, tmp_path: Path
) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": sealed(LOGINS)})

    assert stack.store.called("ensure") == [(ALPINE, LOGINS)]
    assert stack.report()["ok"] is True
    records = "".join(p.read_text() for p in (tmp_path / "jobs").glob("*.json"))
    assert "s3cret" not in records and "alice" not in records


def test_logins_sealed_under_another_key_refuse_the_pull_unanswered(stack: Stack) -> None:
    answer = stack.deliver(PULL, {"ref": ALPINE, "registries": sealed(LOGINS, OTHER_KEY)})

    assert "refused" in answer
    assert stack.reports() == [] and stack.store.called("ensure") == []


def test_logins_changed_on_the_way_refuse_the_pull(stack: Stack) -> None:
    good = sealed(LOGINS)
    tampered = good[:-2] + ("00" if good[-2:] != "00" else "11")

    stack.deliver(PULL, {"ref": ALPINE, "registries": tampered})

    assert stack.reports() == [] and stack.store.called("ensure") == []


@pytest.mark.parametrize(
    "logins",
    [
        {"registry": "r", "username": "u", "password": "p"},
        [{"registry": "r", "username": "u"}],
        [{"registry": "r", "username": "u", "password": 5}],
        [{"registry": "r", "username": "u", "password": "p", "token": "x"}],
    ],
)
def test_sealed_logins_that_are_not_logins_fail_the_pull_naming_them(
    stack: Stack, logins: object
) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": sealed(logins)})

    report = stack.report()
    assert report["ok"] is False and report["error"].startswith("registries")
    assert stack.store.called("ensure") == []


def test_a_pull_the_store_cannot_make_fails_with_its_one_line_reason(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": "docker.io/library/nope:1", "registries": ""})

    report = stack.report()
    assert_images_args(report)
    assert report["ok"] is False
    assert report["error"] == "image docker.io/library/nope:1: no such image in docker.io"
    assert "Traceback" not in report["error"] and report["images"] == []


def test_a_pull_without_a_reference_names_the_field(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": "", "registries": ""})

    report = stack.report()
    assert report["ok"] is False and report["error"].startswith("ref:")


def test_a_pull_with_unknown_arguments_is_answered_not_left_waiting(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": "", "force": True})

    report = stack.report()
    assert report["ok"] is False and report["error"].startswith("the agent failed: TypeError")
    assert "\n" not in report["error"]


# --- apply: sealed logins, digests in the result ----------------------------------------


class RecordingExecutor(Executor):
    """The executor, remembering the registry logins each apply was given."""

    logins: list[list[RegistryLogin]]

    def apply_decoded(self, *args: Any, **kwargs: Any) -> Any:
        self.logins.append(list(args[4]) if len(args) > 4 else list(kwargs.get("logins", ())))
        return super().apply_decoded(*args, **kwargs)


@pytest.fixture
def recording(kernel: FakeKernel, tmp_path: Path) -> Stack:
    built = Stack(kernel, tmp_path)
    executor = RecordingExecutor(tmp_path, kernel.driver, facts=ALL_FACTS)
    executor.logins = []
    built.executor = built.agent.executor = executor
    return built


def apply_kwargs(**extra: Any) -> dict[str, Any]:
    return {"deployment": 7, "plan": plan_dict(deployment=7), "previous": None, **extra}


def test_an_apply_s_sealed_logins_are_opened_for_the_executor(
    recording: Stack, kernel: FakeKernel
) -> None:
    recording.deliver(APPLY, apply_kwargs(registries=sealed(LOGINS)))

    [result] = recording.reports(ControlTask.DEPLOYMENT_RESULT)
    assert result["ok"] is True and result["images"] == {}
    assert recording.executor.logins == [LOGINS]  # type: ignore[attr-defined]
    assert kernel.netns


def test_an_apply_whose_logins_another_key_sealed_is_refused_and_builds_nothing(
    recording: Stack, kernel: FakeKernel
) -> None:
    answer = recording.deliver(APPLY, apply_kwargs(registries=sealed(LOGINS, OTHER_KEY)))

    assert "refused" in answer
    assert recording.reports(ControlTask.DEPLOYMENT_RESULT) == []
    assert recording.reports(ControlTask.DEPLOYMENT_STEP) == []
    assert not kernel.netns and recording.executor.logins == []  # type: ignore[attr-defined]


def test_an_apply_whose_logins_are_not_a_list_fails_naming_them(
    recording: Stack, kernel: FakeKernel
) -> None:
    recording.deliver(APPLY, apply_kwargs(registries=sealed({"registry": "r"})))

    [result] = recording.reports(ControlTask.DEPLOYMENT_RESULT)
    assert result["ok"] is False and result["error"].startswith("registries:")
    assert not kernel.netns


def test_an_apply_a_restart_cut_short_opens_its_sealed_logins_again(recording: Stack) -> None:
    request, message = signed(APPLY, apply_kwargs(registries=sealed(LOGINS)))
    task_id = request.request.id
    recording.agent.jobs.start(task_id, "apply", {"deployment": 7}, message[envelope.FIELD])

    recording.agent.recover()

    assert recording.executor.logins == [LOGINS]  # type: ignore[attr-defined]
    [result] = recording.reports(ControlTask.DEPLOYMENT_RESULT)
    assert result["ok"] is True
    assert "s3cret" not in (recording.agent.jobs.directory / f"{task_id}.json").read_text()


def test_an_apply_without_logins_gives_the_executor_none(recording: Stack) -> None:
    recording.deliver(APPLY, apply_kwargs())

    assert recording.executor.logins == [[]]  # type: ignore[attr-defined]


# --- remove and prune: what a deployment uses stays -------------------------------------


def deploy(stack: Stack, deployment: int = 7) -> str:
    stack.deliver(APPLY, {"deployment": deployment, "plan": plan_dict(deployment=deployment)})
    token = f"lm{deployment}"
    assert stack.reports(ControlTask.DEPLOYMENT_RESULT)[-1]["ok"] is True
    return token


def test_an_image_a_deployment_runs_is_kept_on_remove_and_said_why(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})
    token = deploy(stack)
    stack.used_by(token, ALPINE, ALPINE_DIGEST)

    stack.deliver(REMOVE, {"refs": [ALPINE]})

    report = stack.reports()[-1]
    assert_images_args(report)
    assert report["action"] == "remove" and report["ok"] is False
    assert report["error"] == f"{ALPINE}: used by {token}"
    assert [(i["digest"], i["tokens"]) for i in report["images"]] == [(ALPINE_DIGEST, [token])]


def test_an_unused_image_is_removed(stack: Stack) -> None:
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})

    stack.deliver(REMOVE, {"refs": [ALPINE_DIGEST]})

    report = stack.reports()[-1]
    assert report["ok"] is True and report["message"] == f"removed {ALPINE}"
    assert report["images"] == []


@pytest.mark.parametrize("refs", [[], "alpine", [""], [3]])
def test_a_removal_of_no_list_of_references_names_the_field(stack: Stack, refs: object) -> None:
    stack.deliver(REMOVE, {"refs": refs})

    report = stack.report()
    assert report["ok"] is False and report["error"].startswith("refs:")
    assert stack.store.called("remove") == []


def test_prune_all_keeps_what_deployments_run(stack: Stack) -> None:
    stack.store.registry[FRR] = FRR_DIGEST
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})
    stack.deliver(PULL, {"ref": FRR, "registries": ""})
    token = deploy(stack)
    stack.used_by(token, FRR, FRR_DIGEST)

    stack.deliver(PRUNE, {"all": True})

    report = stack.reports()[-1]
    assert report["action"] == "prune" and report["ok"] is True
    assert report["message"] == f"removed {ALPINE}"
    assert [i["digest"] for i in report["images"]] == [FRR_DIGEST]
    assert stack.store.called("prune")[-1] == ({FRR_DIGEST: [token]}, True)


def test_a_prune_whose_all_is_not_a_boolean_names_the_field(stack: Stack) -> None:
    stack.deliver(PRUNE, {"all": "yes"})

    report = stack.report()
    assert report["ok"] is False and report["error"].startswith("all:")


def test_a_destroy_collects_images_past_the_cache_bound_when_one_is_set(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABMGR_IMAGE_CACHE_MAX", "1G")
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})
    token = deploy(stack)
    stack.used_by(token, ALPINE, ALPINE_DIGEST)

    stack.deliver(DESTROY, {"deployment": 7, "token": token})

    assert stack.reports(ControlTask.DEPLOYMENT_RESULT)[-1]["ok"] is True
    assert stack.store.called("prune") == [({}, False)]  # the destroyed lab no longer holds it
    collected = stack.reports()[-1]
    assert collected["action"] == "prune" and collected["ok"] is True
    assert ALPINE in collected["message"] and collected["images"] == []


def test_a_destroy_collects_nothing_without_a_cache_bound(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABMGR_IMAGE_CACHE_MAX", raising=False)
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})
    token = deploy(stack)

    stack.deliver(DESTROY, {"deployment": 7, "token": token})

    assert stack.store.called("prune") == []
    assert len(stack.reports()) == 1  # the pull's


# --- load: an uploaded archive from Redis ----------------------------------------------


@pytest.fixture
def loading(
    kernel: FakeKernel,
    tmp_path: Path,
    redis_client: redis.Redis,  # noqa: F811 (the fixture)
) -> Iterator[tuple[Stack, redis.Redis]]:
    built = Stack(kernel, tmp_path, uploads=Uploads(redis_client))
    yield built, redis_client
    redis_client.delete(image_upload_key(UPLOAD))


def upload(client: redis.Redis, data: bytes, chunk: int = 1000) -> dict[str, Any]:
    key = image_upload_key(UPLOAD)
    client.delete(key)
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    client.rpush(key, *pieces)
    return {
        "upload": UPLOAD,
        "chunks": len(pieces),
        "sha256": hashlib.sha256(data).hexdigest(),
        "name": None,
    }


ARCHIVE = b"archive" + os.urandom(25_000 - 7)  # 25 chunks of 1000 bytes


def test_an_uploaded_archive_is_loaded_from_a_private_file_then_all_of_it_goes(
    loading: tuple[Stack, redis.Redis], tmp_path: Path
) -> None:
    stack, client = loading

    stack.deliver(LOAD, upload(client, ARCHIVE))

    report = stack.report()
    assert_images_args(report)
    assert report["action"] == "load" and report["ok"] is True
    assert report["message"] == f"loaded {FRR} ({FRR_DIGEST})"
    assert [i["digest"] for i in report["images"]] == [FRR_DIGEST]
    assert stack.store.loaded == [ARCHIVE]
    [(directory, mode, name)] = stack.store.called("load")
    assert directory == tmp_path / "uploads" and mode == 0o600 and name is None
    assert directory.stat().st_mode & 0o777 == 0o700
    assert list(directory.iterdir()) == []
    assert client.exists(image_upload_key(UPLOAD)) == 0


def test_a_load_tags_the_image_with_the_name_given(loading: tuple[Stack, redis.Redis]) -> None:
    stack, client = loading

    stack.deliver(LOAD, {**upload(client, ARCHIVE), "name": "frr-local:1"})

    assert stack.report()["message"] == f"loaded frr-local:1 ({FRR_DIGEST})"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"chunks": 24}, "chunks"),
        ({"chunks": 26}, "chunks"),
        ({"chunks": 0}, "chunks"),
        ({"chunks": True}, "chunks"),
        ({"sha256": hashlib.sha256(b"another archive").hexdigest()}, "sha256"),
        ({"sha256": "abc"}, "sha256"),
        ({"upload": "short"}, "upload"),
        ({"upload": "u" * 31 + "*"}, "upload"),
        ({"upload": "v" * 32}, "upload"),  # nothing was uploaded under it
        ({"name": ""}, "name"),
    ],
)
def test_an_upload_not_as_the_message_says_is_refused_and_nothing_loaded(
    loading: tuple[Stack, redis.Redis], tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    stack, client = loading
    arguments = upload(client, ARCHIVE)
    assert arguments["chunks"] == 25

    stack.deliver(LOAD, {**arguments, **change})

    report = stack.report()
    assert report["ok"] is False and report["error"].startswith(f"{field}:"), report["error"]
    assert stack.store.called("load") == [] and report["images"] == []
    assert list((tmp_path / "uploads").glob("*")) == []
    assert client.exists(image_upload_key(UPLOAD)) == (0 if field != "upload" else 1)


def test_an_archive_larger_than_the_upload_bound_is_refused(
    loading: tuple[Stack, redis.Redis], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, client = loading
    monkeypatch.setenv("LABMGR_IMAGE_UPLOAD_MAX", "20K")

    stack.deliver(LOAD, upload(client, ARCHIVE))

    report = stack.report()
    assert report["ok"] is False and "LABMGR_IMAGE_UPLOAD_MAX" in report["error"]
    assert stack.store.called("load") == [] and list((tmp_path / "uploads").glob("*")) == []
    assert client.exists(image_upload_key(UPLOAD)) == 0


def test_a_bad_upload_bound_is_named(
    loading: tuple[Stack, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, client = loading
    monkeypatch.setenv("LABMGR_IMAGE_UPLOAD_MAX", "lots")

    stack.deliver(LOAD, upload(client, ARCHIVE))

    report = stack.report()
    assert report["ok"] is False and report["error"].startswith("LABMGR_IMAGE_UPLOAD_MAX:")


def test_an_archive_the_store_cannot_read_fails_with_its_reason_and_leaves_nothing(
    loading: tuple[Stack, redis.Redis], tmp_path: Path
) -> None:
    stack, client = loading

    stack.deliver(LOAD, upload(client, b"not an archive at all"))

    report = stack.report()
    assert report["ok"] is False and report["error"].endswith("not a docker save or OCI archive")
    assert list((tmp_path / "uploads").glob("*")) == []
    assert client.exists(image_upload_key(UPLOAD)) == 0


def test_a_forged_load_touches_neither_the_upload_nor_the_store(
    loading: tuple[Stack, redis.Redis],
) -> None:
    stack, client = loading

    stack.deliver(LOAD, upload(client, ARCHIVE), key=OTHER_KEY)

    assert stack.reports() == [] and stack.store.called("load") == []
    assert client.llen(image_upload_key(UPLOAD)) == 25


# --- after a restart ---------------------------------------------------------------------


def test_an_image_job_a_restart_cut_short_is_reported_ended_not_run_again(
    stack: Stack, tmp_path: Path
) -> None:
    request, message = signed(PULL, {"ref": ALPINE, "registries": ""})
    stack.agent.jobs.start(
        request.request.id, "image_pull", {"ref": ALPINE}, message[envelope.FIELD]
    )
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "upload-half.tar").write_bytes(b"half")

    done = stack.agent.recover()

    assert stack.store.called("ensure") == []
    report = stack.report()
    assert report["action"] == "pull" and report["ok"] is False
    assert report["error"] == "the agent restarted first"
    assert list((tmp_path / "uploads").iterdir()) == []
    assert any("upload-half.tar" in line for line in done)


# --- the heartbeat -----------------------------------------------------------------------


def beats(stack: Stack) -> list[dict[str, Any]]:
    return [report["facts"] for report in stack.reports(ControlTask.HEARTBEAT)]


def test_the_heartbeat_lists_the_store_read_at_most_every_30_seconds(stack: Stack) -> None:
    heartbeat = Heartbeat(
        stack.executor,
        celery_send(stack.app, stack.signer),
        "local",
        images=stack.agent.image_facts,
    )
    stack.store.present[ALPINE_DIGEST] = FakeImage(ALPINE, ALPINE_DIGEST)

    heartbeat.beat()
    stack.store.present.clear()  # gone behind the agent's back: seen within 30 s
    heartbeat.beat()

    first, second = beats(stack)
    assert [i["digest"] for i in first["images"]] == [ALPINE_DIGEST]
    assert second["images"] == first["images"]
    assert len(stack.store.called("images")) == 1
    assert isinstance(first["image_tools"], bool)


def test_the_heartbeat_lists_what_an_image_job_did_at_once(stack: Stack) -> None:
    heartbeat = Heartbeat(
        stack.executor,
        celery_send(stack.app, stack.signer),
        "local",
        images=stack.agent.image_facts,
    )
    heartbeat.beat()

    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})
    heartbeat.beat()

    before, after = beats(stack)
    assert before["images"] == [] and [i["digest"] for i in after["images"]] == [ALPINE_DIGEST]


def test_the_heartbeat_shows_a_deployment_using_an_image_after_its_apply(stack: Stack) -> None:
    heartbeat = Heartbeat(
        stack.executor,
        celery_send(stack.app, stack.signer),
        "local",
        images=stack.agent.image_facts,
    )
    stack.deliver(PULL, {"ref": ALPINE, "registries": ""})
    heartbeat.beat()

    token = deploy(stack)
    stack.used_by(token, ALPINE, ALPINE_DIGEST)  # as the apply's pull step journals it
    heartbeat.beat()

    before, after = beats(stack)
    assert before["images"][0]["tokens"] == [] and after["images"][0]["tokens"] == ["lm7"]


# --- a pull's steps ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pull(ops.Op):
    """A plan's pull of one image, as the compiler puts it first (op `pull_image`)."""

    kind: ClassVar[str] = "pull_image"
    ref: str


def test_each_pull_is_a_step_whose_progress_and_end_share_its_number() -> None:
    sent: list[dict[str, Any]] = []
    reporter = Reporter(lambda task, kwargs: sent.append(dict(kwargs)))
    plan = ops.HostPlan("local", "lm7", 1, (Pull(ALPINE), Pull(FRR), ops.CreateNetns("lm7-n0")))
    steps = StepGroups(reporter, 7, 1, plan)

    steps(Step(0, 3, "pull_image", ALPINE, "running", 0.5, "1/2 layers, 1.2 MB"))
    steps(Step(0, 3, "pull_image", ALPINE, "running", 0.9, "2/2 layers, 3.4 MB"))
    steps(Step(0, 3, "pull_image", ALPINE, "done", 1.0, ALPINE_DIGEST))
    steps(Step(1, 3, "pull_image", FRR, "failed", 0.2, f"image {FRR}: access denied"))

    assert [
        (s["seq"], s["total"], s["name"], s["target"], s["status"], s["message"]) for s in sent
    ] == [
        (1001, 3, "pull", ALPINE, "running", "1/2 layers, 1.2 MB"),
        (1001, 3, "pull", ALPINE, "running", "2/2 layers, 3.4 MB"),
        (1001, 3, "pull", ALPINE, "done", ALPINE_DIGEST),
        (1002, 3, "pull", FRR, "failed", f"image {FRR}: access denied"),
    ]
    assert [s["seconds"] for s in sent[:3]] == [0.5, 0.9, 1.0]


def test_the_steps_after_the_pulls_are_grouped_as_before() -> None:
    sent: list[dict[str, Any]] = []
    reporter = Reporter(lambda task, kwargs: sent.append(dict(kwargs)))
    netns = (ops.CreateNetns("lm7-n0"), ops.CreateNetns("lm7-n1"))
    steps = StepGroups(reporter, 7, 2, ops.HostPlan("local", "lm7", 1, (Pull(ALPINE), *netns)))

    for step in (
        Step(0, 3, "pull_image", ALPINE, "done", 0.1, ALPINE_DIGEST),
        Step(1, 3, "create_netns", "lm7-n0", "done", 0.01),
        Step(2, 3, "create_netns", "lm7-n1", "done", 0.01),
    ):
        steps(step)

    assert [(s["seq"], s["total"], s["name"], s["target"], s["message"]) for s in sent] == [
        (2001, 2, "pull", ALPINE, ALPINE_DIGEST),
        (2002, 2, "namespaces", "2 create_netns", ""),
    ]
