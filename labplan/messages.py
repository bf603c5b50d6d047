"""The contract between the control plane and the host agents: every name and shape that
crosses the broker (docs/messages.md is checked against this module).

Task names, queue names and Redis keys are defined here and nowhere else; both sides
import them (a test fails on a task or queue name spelled out anywhere else). The
payloads are `TypedDict`s, one per message, naming the keyword arguments that travel in
the body of a signed envelope (labplan.envelope). Pure: no I/O.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, NotRequired, TypedDict

from labplan import naming

# --- queues -----------------------------------------------------------------------------

CONTROL_QUEUE = "control"  # the control worker (Django, database access): unprivileged
# The scenario worker (Django, unprivileged): the steps of running scenarios, kept off the
# control worker, so a user's slow step never holds up the agents' reports.
SCENARIO_QUEUE = "scenarios"
HOST_QUEUE_PREFIX = "host."  # one per host agent (root): `host.<slug>`


def host_queue(slug: str) -> str:
    return HOST_QUEUE_PREFIX + slug


# --- task names -------------------------------------------------------------------------

AGENT_TASK_PREFIX = "labmgr.agent."  # every AgentTask's name starts so
CONTROL_TASK_PREFIX = "labmgr.control."  # every ControlTask's and BeatTask's


class AgentTask(enum.StrEnum):
    """What the control plane asks of a host's agent (queue `host.<slug>`)."""

    APPLY = "labmgr.agent.apply"
    DESTROY = "labmgr.agent.destroy"
    CHECK = "labmgr.agent.check"
    EXEC = "labmgr.agent.exec"
    SWEEP = "labmgr.agent.sweep"
    TERMINAL_OPEN = "labmgr.agent.terminal_open"
    CAPTURE_START = "labmgr.agent.capture_start"
    CAPTURE_STOP = "labmgr.agent.capture_stop"
    REKEY = "labmgr.agent.rekey"
    IMAGE_PULL = "labmgr.agent.image_pull"
    IMAGE_REMOVE = "labmgr.agent.image_remove"
    IMAGE_PRUNE = "labmgr.agent.image_prune"
    IMAGE_LOAD = "labmgr.agent.image_load"
    LIVE = "labmgr.agent.live"


class ControlTask(enum.StrEnum):
    """What an agent tells the control plane (queue `control`)."""

    HEARTBEAT = "labmgr.control.heartbeat"
    DEPLOYMENT_STEP = "labmgr.control.deployment_step"
    DEPLOYMENT_RESULT = "labmgr.control.deployment_result"
    DRIFT = "labmgr.control.drift"
    METRICS = "labmgr.control.metrics"
    CAPTURE_PROGRESS = "labmgr.control.capture_progress"
    CAPTURE_FINISHED = "labmgr.control.capture_finished"
    REKEYED = "labmgr.control.rekeyed"
    IMAGES = "labmgr.control.images"


class BeatTask(enum.StrEnum):
    """The control plane's own housekeeping, sent by its beat to `control`: no arguments,
    nothing an agent sends, doing only what the clock says is due."""

    HOSTS_CHECK = "labmgr.control.hosts_check"
    DRIFT_CHECK = "labmgr.control.drift_check"
    METRICS_RETENTION = "labmgr.control.metrics_retention"
    RESERVATIONS_TICK = "labmgr.control.reservations_tick"
    CAPTURES_EXPIRE = "labmgr.control.captures_expire"
    SCENARIOS_TICK = "labmgr.control.scenarios_tick"


# The kernel jobs an agent records by task id and runs again after a restart (while its
# signature still holds), and the one whose caller waits for its answer.
KERNEL_JOBS = (AgentTask.APPLY, AgentTask.DESTROY, AgentTask.CHECK, AgentTask.SWEEP)
ANSWERED = (AgentTask.EXEC, AgentTask.CAPTURE_START, AgentTask.LIVE)


def job_name(task: AgentTask) -> str:
    """The short name of an agent task ("apply" for labmgr.agent.apply)."""
    return task.value.rsplit(".", 1)[1]


# --- Redis keys of streams --------------------------------------------------------------

TERMINAL_KEY_PREFIX = "labmgr:term:"
CAPTURE_KEY_PREFIX = "labmgr:capture:"
IMAGE_KEY_PREFIX = "labmgr:image:"


def terminal_keys(session: str) -> tuple[str, str]:
    """A terminal session's lists: keystrokes in (web -> agent), output out."""
    return f"{TERMINAL_KEY_PREFIX}{session}:in", f"{TERMINAL_KEY_PREFIX}{session}:out"


def pcap_key(capture: str) -> str:
    """The list the agent pushes a capture's file on, in chunks."""
    return f"{CAPTURE_KEY_PREFIX}{capture}:pcap"


def image_upload_key(upload: str) -> str:
    """The list the control plane pushes an uploaded image archive on, in chunks, for
    one host's agent to load."""
    return f"{IMAGE_KEY_PREFIX}{upload}:archive"


# --- Channels groups of browser events (published by the control plane only) -----------

LAB_GROUP_PREFIX = "lab."
HOST_GROUP_PREFIX = "host."  # the same spelling as the host's queue, another namespace


def lab_group(lab: int) -> str:
    """The group a lab's viewers subscribe to: its deployments' status, steps, metrics."""
    return f"{LAB_GROUP_PREFIX}{lab}"


def host_group(slug: str) -> str:
    """The group a host's status goes to (admins' dashboards)."""
    return HOST_GROUP_PREFIX + slug


# --- step states ------------------------------------------------------------------------

StepState = Literal["running", "done", "failed", "rolled back"]
STEP_RUNNING: Final = "running"  # a long step's progress so far (an image pull's layers)
STEP_DONE: Final = "done"
STEP_FAILED: Final = "failed"
STEP_ROLLED_BACK: Final = "rolled back"  # what a failed apply undid
STEP_STATES: tuple[StepState, ...] = (STEP_RUNNING, STEP_DONE, STEP_FAILED, STEP_ROLLED_BACK)


# --- budgets and the cgroups they hold --------------------------------------------------

CPU_PERIOD = 100_000  # microseconds: the kernel's default cpu.max (cfs) period
RESERVATION_CGROUP_PREFIX = "r"


class Budget(TypedDict):
    """What the agent holds a deployment to (the apply's `budget`): a reservation's share
    on `labmgr/r<id>`, or with `reservation` None a host-wide amount on the deployment's
    own cgroup. None in a kind: no bound of that kind from the control plane (the agent's
    own ceiling on its `labmgr` parent still holds)."""

    reservation: int | None
    cgroup: str | None
    cpus: float | None
    memory: int | None
    pids: int | None


def reservation_cgroup(reservation: int) -> str:
    """The reservation's parent cgroup below `labmgr`: "r" and its id in base 36 (no
    deployment token, "lm...", can take such a name)."""
    return RESERVATION_CGROUP_PREFIX + naming.base36(reservation)


def budget_for(
    reservation: int | None,
    cpus: float | None = None,
    memory: int | None = None,
    pids: int | None = None,
) -> Budget:
    """A budget with its cgroup named after its reservation (None: a host-wide one)."""
    return {
        "reservation": reservation,
        "cgroup": reservation_cgroup(reservation) if reservation is not None else None,
        "cpus": cpus,
        "memory": memory,
        "pids": pids,
    }


# --- payloads: control plane -> agent ---------------------------------------------------


class RegistryLogin(TypedDict):
    """An admin's credentials for one registry (`registry` as a reference names it:
    "docker.io", "registry.example:5000"); they travel sealed (`registries` below)."""

    registry: str
    username: str
    password: str


class ApplyArgs(TypedDict, total=False):
    deployment: int
    plan: dict[str, object]
    previous: dict[str, object] | None
    budget: Budget
    # The registry logins the plan's pulls may need, a JSON list of RegistryLogin sealed
    # under the host's key (labplan.envelope.seal_secret); absent: none.
    registries: str


class DestroyArgs(TypedDict):
    deployment: int
    token: str


class CheckArgs(TypedDict):
    deployment: int
    plan: dict[str, object]


class ExecArgs(TypedDict):
    deployment: int
    token: str
    node: str
    argv: list[str]
    timeout: float


class LiveShaping(TypedDict):
    """Impairments in the agent's units, as labplan.ops.SetShaping holds them."""

    rate: int | None  # bit/s
    delay: int | None  # microseconds
    jitter: int | None
    loss: float | None  # percent
    duplicate: float | None
    corrupt: float | None
    reorder: float | None


class LiveChange(TypedDict, total=False):
    """One change of a running node (labplan.live makes them): with `ifname`, its
    interface's `impairments` (None: none; `previous` is put back if the kernel refuses
    the new ones) or its state (`up`); without, its `action` ("stop", "kill", "start",
    which keeps the interfaces named in `down` down)."""

    node: str
    ifname: str
    impairments: LiveShaping | None
    previous: LiveShaping | None
    up: bool
    action: Literal["stop", "kill", "start"]
    down: list[str]


class LiveArgs(TypedDict):
    deployment: int
    token: str
    changes: list[LiveChange]


class SweepArgs(TypedDict):
    live: list[str]


class TerminalOpenArgs(TypedDict):
    session: str
    token: str
    node: str
    cols: int
    rows: int


class CaptureStartArgs(TypedDict):
    capture: str
    deployment: int
    token: str
    node: str
    interface: str
    filter: str
    max_bytes: int
    max_seconds: float


class CaptureStopArgs(TypedDict):
    capture: str


class RekeyArgs(TypedDict):
    key: str  # the new key, wrapped under the current one (labplan.envelope.wrap_key)


class ImagePullArgs(TypedDict):
    ref: str  # a reference as a labfile's `image:` takes it
    registries: str  # sealed, as ApplyArgs' (may be "")


class ImageRemoveArgs(TypedDict):
    refs: list[str]  # references or manifest digests ("sha256:<hex>")


class ImagePruneArgs(TypedDict):
    all: bool  # True: every image no deployment uses; False: down to the cache's bound


class ImageLoadArgs(TypedDict):
    upload: str  # names the Redis list (image_upload_key) holding the archive's chunks
    chunks: int
    sha256: str  # of the whole archive, as uploaded
    name: str | None  # a reference to tag the archive's single image with; None: its own


# --- payloads: agent -> control plane ---------------------------------------------------


class HeartbeatArgs(TypedDict):
    host: str
    facts: dict[str, object]
    tokens: list[str]
    sent: float


class StepArgs(TypedDict):
    deployment: int
    seq: int
    total: int
    name: str
    target: str
    status: StepState
    message: str
    seconds: float


class ResultInterface(TypedDict):
    ifname: str
    mac: str
    addresses: list[str]


class ResultNode(TypedDict):
    name: str
    pid: int
    netns: str | None
    interfaces: list[ResultInterface]
    note: str


class ResultArgs(TypedDict):
    deployment: int
    action: Literal["apply", "destroy"]
    ok: bool
    error: str
    nodes: list[ResultNode]
    images: NotRequired[dict[str, str]]  # an apply's: reference -> manifest digest it ran


class ImageFact(TypedDict):
    """One image in a host's store (heartbeat `facts.images`, `images` reports)."""

    digest: str  # "sha256:<hex>" of the image's manifest
    refs: list[str]  # the canonical references naming it on this host
    size: int  # bytes it holds on disk (its blobs and its unpacked tree)
    last_used: float  # epoch seconds it was last pulled, loaded or deployed
    tokens: list[str]  # deployments on this host whose nodes run it


class ImagesArgs(TypedDict):
    host: str
    action: Literal["pull", "remove", "prune", "load"]
    ok: bool
    error: str  # what went wrong, for the admin who asked; "" when ok
    message: str  # what was done ("pulled docker.io/library/alpine:3.20 (sha256:...)")
    images: list[ImageFact]  # the whole store after the action


class DriftArgs(TypedDict):
    deployment: int
    missing: list[str]
    extra: list[str]


class MetricsArgs(TypedDict):
    host: str
    sent: float
    samples: list[dict[str, object]]


class CaptureProgressArgs(TypedDict):
    capture: str
    state: Literal["running"]
    packets: int
    bytes: int


class CaptureFinishedArgs(TypedDict):
    capture: str
    state: Literal["stopped", "failed"]
    packets: int
    bytes: int
    reason: str
    chunks: int
    sha256: str


# --- answers (Celery results, signed as `<task>.result`) --------------------------------


class ExecAnswer(TypedDict):
    exit: int
    stdout: str
    stderr: str


class LiveAnswer(TypedDict):
    ok: bool
    error: str  # why the kernel refused a change ("" when ok); the ones before were undone
    done: int  # changes made (all of them when ok)
    stopped: list[str]  # the changes' nodes that are stopped now
    seconds: float  # the agent's time for the changes, once it held its job lock


class CaptureStartAnswer(TypedDict):
    ok: bool
    field: str
    error: str


ARGS: dict[str, type] = {
    AgentTask.APPLY: ApplyArgs,
    AgentTask.DESTROY: DestroyArgs,
    AgentTask.CHECK: CheckArgs,
    AgentTask.EXEC: ExecArgs,
    AgentTask.SWEEP: SweepArgs,
    AgentTask.TERMINAL_OPEN: TerminalOpenArgs,
    AgentTask.CAPTURE_START: CaptureStartArgs,
    AgentTask.CAPTURE_STOP: CaptureStopArgs,
    AgentTask.REKEY: RekeyArgs,
    AgentTask.IMAGE_PULL: ImagePullArgs,
    AgentTask.IMAGE_REMOVE: ImageRemoveArgs,
    AgentTask.IMAGE_PRUNE: ImagePruneArgs,
    AgentTask.IMAGE_LOAD: ImageLoadArgs,
    AgentTask.LIVE: LiveArgs,
    ControlTask.HEARTBEAT: HeartbeatArgs,
    ControlTask.DEPLOYMENT_STEP: StepArgs,
    ControlTask.DEPLOYMENT_RESULT: ResultArgs,
    ControlTask.DRIFT: DriftArgs,
    ControlTask.METRICS: MetricsArgs,
    ControlTask.CAPTURE_PROGRESS: CaptureProgressArgs,
    ControlTask.CAPTURE_FINISHED: CaptureFinishedArgs,
    ControlTask.IMAGES: ImagesArgs,
}
"""Each signed message's arguments (`labmgr.control.rekeyed` has none)."""
