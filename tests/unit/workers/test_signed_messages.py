"""The broker cannot make the agent act: every message of the host's queue is opened with
the host's key before a job sees it, and everything the agent says is signed. Each
attack is a message as a forger with access to Redis would send it; the assertions are
what the kernel holds afterwards (the in-memory kernel) and what the agent reported."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from labplan import envelope
from labplan.envelope import Refused
from tests.unit.workers.fake_kernel import ALL_FACTS, Crash, CrashingDriver, FakeKernel
from tests.unit.workers.labs import plan_dict
from tests.unit.workers.signing import (
    KEY,
    OTHER_KEY,
    FakeApp,
    host_signer,
    opened,
    signed,
)
from workers import agent as agent_module
from workers.agent import Agent
from workers.executor import Executor
from workers.tasks import celery_send, register

APPLY = "labmgr.agent.apply"


class Stack:
    """An agent bound to a fake Celery app, as `python -m workers agent` binds it."""

    def __init__(self, kernel: FakeKernel, data: Path, driver: Any = None) -> None:
        self.app = FakeApp()
        self.signer = host_signer(data)
        executor = Executor(data, driver or kernel.driver, facts=ALL_FACTS)
        self.opened_terminals: list[str] = []
        self.agent = Agent(
            executor,
            celery_send(self.app, self.signer),
            "local",
            terminals=self,  # type: ignore[arg-type]
            signer=self.signer,
        )
        register(self.app, self.agent, self.signer)

    def deliver(self, task: str, kwargs: dict[str, Any], **how: Any) -> Any:
        request, message = signed(task, kwargs, **how)
        return self.app.tasks[task](request, **message)

    def reports(self, task: str = "labmgr.control.deployment_result") -> list[dict[str, Any]]:
        return [opened(kw, name) for name, kw, _, _ in self.app.sent if name == task]

    # what Terminals offers the agent
    def open(self, session: str, pid: int, spawn: Any, cols: int, rows: int) -> None:
        self.opened_terminals.append(session)

    def close_token(self, token: str) -> None:
        pass


@pytest.fixture
def stack(kernel: FakeKernel, tmp_path: Path) -> Stack:
    return Stack(kernel, tmp_path)


def apply_kwargs(deployment: int = 7) -> dict[str, Any]:
    return {"deployment": deployment, "plan": plan_dict(deployment=deployment), "previous": None}


def test_a_signed_apply_builds_the_lab_and_every_report_is_signed_for_the_host(
    stack: Stack, kernel: FakeKernel
) -> None:
    stack.deliver(APPLY, apply_kwargs())

    assert len(kernel.processes) == 3
    [result] = stack.reports()
    assert result["ok"] is True and result["deployment"] == 7
    for _, kwargs, _, queue in stack.app.sent:
        assert set(kwargs) == {"signed"} and queue == "control"
        assert envelope.claimed_host(kwargs["signed"]) == "local"
        with pytest.raises(Refused, match="signature"):  # nobody else's key makes it
            opened(kwargs, "labmgr.control.deployment_result", key=OTHER_KEY)


@pytest.mark.parametrize(
    ("forgery", "how"),
    [
        ("unsigned", None),
        ("signed with another key", {"key": OTHER_KEY}),
        ("signed for another host", {"host": "node-b"}),
        ("issued an hour ago", {"issued": time.time() - 3600}),
        ("issued in the future", {"issued": time.time() + 3600}),
    ],
)
def test_a_forged_apply_is_refused_and_nothing_is_built(
    stack: Stack, kernel: FakeKernel, forgery: str, how: dict[str, Any] | None
) -> None:
    if how is None:
        request, _ = signed(APPLY, {})
        answer = stack.app.tasks[APPLY](request, **apply_kwargs())
    else:
        answer = stack.deliver(APPLY, apply_kwargs(), **how)

    assert answer == {"refused": "the agent refused the message (see its log)"}, forgery
    assert kernel.objects() == []
    assert stack.app.sent == []  # not even a failure report a forger could aim at a lab


def test_a_message_signed_for_another_task_is_refused(stack: Stack, kernel: FakeKernel) -> None:
    """A signed `check` replayed on the `apply` task, and one whose id is not the id it
    travelled under."""
    request, message = signed("labmgr.agent.check", apply_kwargs())
    stack.app.tasks[APPLY](request, **message)
    request, message = signed(APPLY, apply_kwargs())
    request.request.id = "f" * 32
    stack.app.tasks[APPLY](request, **message)

    assert kernel.processes == {} and stack.app.sent == []


def test_a_replayed_apply_changes_nothing_in_the_kernel(stack: Stack, kernel: FakeKernel) -> None:
    request, message = signed(APPLY, apply_kwargs())
    stack.app.tasks[APPLY](request, **message)
    stack.deliver("labmgr.agent.destroy", {"deployment": 7, "token": "lm7"})
    assert kernel.processes == {}

    stack.app.tasks[APPLY](request, **message)  # the same message, played again

    assert kernel.objects() == []


def test_an_exec_answer_is_signed_and_a_forged_exec_runs_nothing(stack: Stack) -> None:
    stack.deliver(APPLY, apply_kwargs())
    command = {"deployment": 7, "token": "lm7", "node": "web", "argv": ["id"], "timeout": 5}

    forged = stack.deliver("labmgr.agent.exec", command, key=OTHER_KEY)
    answer = stack.deliver("labmgr.agent.exec", command)

    assert forged == {"refused": "the agent refused the message (see its log)"}
    value = opened(answer, "labmgr.agent.exec.result")["value"]
    assert set(value) == {"exit", "stdout", "stderr"}


def test_a_terminal_opens_once_and_only_for_an_unguessable_session(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "alive", lambda process: True)  # the fake kernel's inits
    stack.deliver(APPLY, apply_kwargs())
    session = {"token": "lm7", "node": "web", "cols": 80, "rows": 24}
    good = "k3Jq9dXw2LmPz8RtYv4BnA"
    request, message = signed("labmgr.agent.terminal_open", {**session, "session": good})

    first = stack.app.tasks["labmgr.agent.terminal_open"](request, **message)
    again = stack.app.tasks["labmgr.agent.terminal_open"](request, **message)
    guessable = stack.deliver("labmgr.agent.terminal_open", {**session, "session": "1"})
    forged = stack.deliver(
        "labmgr.agent.terminal_open", {**session, "session": "x" * 22}, key=OTHER_KEY
    )

    assert (first, again, guessable, forged) == (True, False, False, False)
    assert stack.opened_terminals == [good]


def test_a_rotated_key_is_written_privately_and_the_old_key_signs_only_older_messages(
    stack: Stack, kernel: FakeKernel, tmp_path: Path
) -> None:
    new = bytes([9] * 32)
    request, _ = signed("labmgr.agent.rekey", {})
    sealed_before = signed(APPLY, apply_kwargs(8))  # signed before the rotation, with KEY
    wrapped = envelope.wrap_key(KEY, new, request.request.id)
    rotation = envelope.seal(
        KEY,
        task="labmgr.agent.rekey",
        host="local",
        id=request.request.id,
        issued=time.time(),
        kwargs={"key": wrapped},
    )

    stack.app.tasks["labmgr.agent.rekey"](request, signed=rotation)

    path = tmp_path / "host.key"
    assert path.read_text() == new.hex() + "\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [(task, kwargs, _, _)] = stack.app.sent
    assert task == "labmgr.control.rekeyed"
    opened(kwargs, task, key=new)  # confirmed with the new key
    stack.app.tasks[APPLY](sealed_before[0], **sealed_before[1])
    assert len(kernel.processes) == 3  # in flight when the key changed: still good
    late = stack.deliver(APPLY, apply_kwargs(9), issued=time.time() + 1)  # after: not
    assert late == {"refused": "the agent refused the message (see its log)"}
    stack.deliver("labmgr.agent.destroy", {"deployment": 8, "token": "lm8"}, key=new)
    stack.deliver(APPLY, apply_kwargs(9), key=new, issued=time.time() + 1)
    assert {cgroup.split("/")[0] for cgroup, _ in kernel.processes.values()} == {"lm9"}


def test_a_rotation_signed_with_another_key_is_refused(stack: Stack, tmp_path: Path) -> None:
    request, _ = signed("labmgr.agent.rekey", {})
    rotation = envelope.seal(
        OTHER_KEY,
        task="labmgr.agent.rekey",
        host="local",
        id=request.request.id,
        issued=time.time(),
        kwargs={"key": envelope.wrap_key(OTHER_KEY, bytes(32), request.request.id)},
    )

    stack.app.tasks["labmgr.agent.rekey"](request, signed=rotation)

    assert (tmp_path / "host.key").read_text() == KEY.hex() + "\n"
    assert stack.app.sent == []


def test_after_a_restart_under_another_install_a_kept_apply_is_not_run_again(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    """The agent crashed mid-apply; it comes back with the key of a fresh install (the
    old install's control plane no longer exists): the half-built lab goes, nothing
    is re-run."""
    crashing = Stack(kernel, tmp_path, lambda: CrashingDriver(kernel, 25))
    with pytest.raises(Crash):
        crashing.deliver(APPLY, apply_kwargs())
    assert kernel.netns  # half built
    kernel.calls = 0

    restarted = Stack(kernel, tmp_path)
    restarted.signer = host_signer(tmp_path, key=OTHER_KEY)
    restarted.agent.signer = restarted.signer
    done = restarted.agent.recover()

    assert done[0].endswith("not run again: the signature does not match the host's key")
    assert done[1] == "lm7 removed: its apply is not run again"
    assert kernel.objects() == []


def test_after_a_restart_a_kept_apply_still_signed_by_the_control_plane_is_finished(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    crashing = Stack(kernel, tmp_path, lambda: CrashingDriver(kernel, 25))
    with pytest.raises(Crash):
        crashing.deliver(APPLY, apply_kwargs())
    kernel.calls = 0

    restarted = Stack(kernel, tmp_path)
    done = restarted.agent.recover()

    assert len(done) == 1 and done[0].endswith("run again")
    assert len(kernel.processes) == 3
    assert restarted.reports()[0]["ok"] is True


def test_the_agents_state_is_private_to_root(stack: Stack, tmp_path: Path) -> None:
    stack.deliver(APPLY, apply_kwargs())

    for directory in (tmp_path / "jobs", tmp_path / "journal"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        files = list(directory.iterdir())
        assert files
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert stat.S_IMODE((tmp_path / "host.key").stat().st_mode) == 0o600
