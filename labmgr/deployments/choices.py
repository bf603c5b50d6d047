"""Deployment states and the only transitions allowed between them; step states, and the
words agents report them with."""

from __future__ import annotations

from django.db import models

from labplan.messages import STEP_DONE, STEP_FAILED, STEP_ROLLED_BACK, STEP_RUNNING


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DEPLOYING = "deploying", "Deploying"
    RUNNING = "running", "Running"
    DESTROYING = "destroying", "Destroying"
    DESTROYED = "destroyed", "Destroyed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    UNKNOWN = "unknown", "Unknown"


S = DeploymentStatus

# Every legal edge of the state machine. UNKNOWN is where a deployment goes when its host
# stops answering; it leaves it once the host reports again. FAILED may still own kernel
# objects, so it can only end by being destroyed.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.DEPLOYING, S.CANCELLED, S.FAILED}),
    S.DEPLOYING: frozenset({S.RUNNING, S.FAILED, S.DESTROYING, S.UNKNOWN}),
    # RUNNING -> DEPLOYING is a redeploy: the agent changes only the difference.
    S.RUNNING: frozenset({S.DEPLOYING, S.DESTROYING, S.FAILED, S.UNKNOWN}),
    S.DESTROYING: frozenset({S.DESTROYED, S.FAILED, S.UNKNOWN}),
    S.FAILED: frozenset({S.DESTROYING}),
    S.UNKNOWN: frozenset({S.DEPLOYING, S.RUNNING, S.FAILED, S.DESTROYING, S.DESTROYED}),
    S.DESTROYED: frozenset(),
    S.CANCELLED: frozenset(),
}

# States after which nothing of the deployment is running any more.
FINISHED_STATES: frozenset[str] = frozenset({S.DESTROYED, S.CANCELLED, S.FAILED})
# States in which a deployment is the lab's one current deployment (one at a time).
ACTIVE_STATES: frozenset[str] = frozenset(
    {S.PENDING, S.DEPLOYING, S.RUNNING, S.DESTROYING, S.UNKNOWN}
)
# States whose kernel objects the host must keep (FAILED may still own some).
KEPT_STATES: frozenset[str] = ACTIVE_STATES | {S.FAILED}


class StepStatus(models.TextChoices):
    STARTED = "started", "Started"
    SUCCEEDED = "succeeded", "Succeeded"
    # A failure the user caused or expected (e.g. a missing kernel feature) ...
    FAILED = "failed", "Failed"
    # ... apart from one that is a bug in labmgr.
    ERRORED = "errored", "Errored"
    ROLLED_BACK = "rolled_back", "Rolled back"


# Every word an agent's step report is accepted with, in any case: the one place the
# control plane reads them. The agent sends only "running", "done", "failed" and "rolled
# back" (`labplan.messages.STEP_STATES`, sent by workers/reports.py); the other five spellings
# are still accepted, until the control plane reads the contract's words alone.
AGENT_STEP_STATUS: dict[str, StepStatus] = {
    "started": StepStatus.STARTED,
    STEP_RUNNING: StepStatus.STARTED,
    STEP_DONE: StepStatus.SUCCEEDED,
    "succeeded": StepStatus.SUCCEEDED,
    "ok": StepStatus.SUCCEEDED,
    STEP_FAILED: StepStatus.FAILED,
    "errored": StepStatus.ERRORED,
    STEP_ROLLED_BACK: StepStatus.ROLLED_BACK,
    "rolled_back": StepStatus.ROLLED_BACK,
}


def step_status_from_agent(word: str) -> StepStatus | None:
    """The step state an agent's word stands for; None for a word no agent uses."""
    return AGENT_STEP_STATUS.get(word.lower())
