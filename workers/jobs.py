"""The agent's jobs by their short names, as its job log records them and its reports
name them; each is delivered as its task of the contract (labplan.messages)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from labplan.messages import ANSWERED, KERNEL_JOBS, AgentTask, job_name


class Job(StrEnum):
    APPLY = job_name(AgentTask.APPLY)  # and redeploy
    DESTROY = job_name(AgentTask.DESTROY)
    CHECK = job_name(AgentTask.CHECK)
    SWEEP = job_name(AgentTask.SWEEP)
    EXEC = job_name(AgentTask.EXEC)
    IMAGE_PULL = job_name(AgentTask.IMAGE_PULL)
    IMAGE_REMOVE = job_name(AgentTask.IMAGE_REMOVE)
    IMAGE_PRUNE = job_name(AgentTask.IMAGE_PRUNE)
    IMAGE_LOAD = job_name(AgentTask.IMAGE_LOAD)
    LIVE = job_name(AgentTask.LIVE)

    @classmethod
    def named(cls, name: object) -> Job | None:
        """The job called `name` (as a job log records it), None for no job of the agent."""
        return next((job for job in cls if job.value == name), None)

    @property
    def task(self) -> AgentTask:
        """The Celery task the control plane sends the job as."""
        return AgentTask[self.name]

    @property
    def answered(self) -> bool:
        """Whether the caller waits for the job's value (its Celery result), rather than
        hearing of it through `labmgr.control.*` reports."""
        return self.task in ANSWERED

    @property
    def rerun(self) -> bool:
        """Whether a job a restart cut short runs again (an exec's caller gave up long
        ago)."""
        return self.task in KERNEL_JOBS

    @property
    def image_action(self) -> ImageAction | None:
        """What an image job does to the host's store, as its `images` report names it;
        None for the other jobs."""
        return IMAGE_ACTIONS.get(self)


ImageAction = Literal["pull", "remove", "prune", "load"]
# Image jobs answer with an `images` report and are not run again after a restart (an
# admin asks again): a pull or a load cut short leaves nothing the store uses.
IMAGE_ACTIONS: dict[Job, ImageAction] = {
    Job.IMAGE_PULL: "pull",
    Job.IMAGE_REMOVE: "remove",
    Job.IMAGE_PRUNE: "prune",
    Job.IMAGE_LOAD: "load",
}
