"""The host agent's jobs (`Job`: apply and redeploy, destroy, check, exec, sweep, and the
image store's pull, remove, prune and load), terminals, and its recovery after a restart;
Celery delivers them (workers.tasks).

`Agent` holds the executor and the `send` seam; each job runs under one lock (kernel
changes on a host are strictly serial) and is recorded in the `JobLog` by task id, so a
duplicate delivery re-sends the recorded reports and changes nothing.

`Agent.recover`, on start, finishes what a crash cut short, so every deployment ends
RUNNING or FAILED, never stuck: a job the log shows "started" runs again with its own
arguments (the executor is idempotent, so an apply converges, or fails and rolls back,
and a destroy completes), its result recorded under the job's task id, which then
answers the message's redelivery. A journal still "applying" with no such job (an apply
by hand) is converged the same way from the plan it holds.

Registry logins come sealed under the host's key (workers.images.transfer.open_logins)
and are opened only where a pull needs them: never written to a job's record in clear.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from labplan import naming, ops
from labplan.envelope import Refused
from labplan.messages import (
    STEP_DONE,
    ControlTask,
    DriftArgs,
    ImageFact,
    LiveAnswer,
    RegistryLogin,
)
from workers import config
from workers.celery_app import host_slug
from workers.decoding import decode, decode_budget
from workers.diff import HostDiff, diff, prune
from workers.driver import NodeProcess
from workers.errors import ApplyError, MoveRefusedError, RefusedError
from workers.executor import Executor, NodeReport
from workers.images.transfer import LoginsError, UploadError, Uploads, leftovers, open_logins
from workers.init.build import lminit_path
from workers.jobs import ImageAction, Job
from workers.journal import Record, images_in_use
from workers.kernel.cgroups import Cgroups
from workers.kernel.processes import Processes, alive
from workers.keys import Signer
from workers.reports import JobLog, Reporter, Send, StepGroups
from workers.status import drift

log = logging.getLogger("labmgr.agent")

MAX_OUTPUT = 1 << 20  # bytes of a command's stdout (and of its stderr) sent back
IMAGE_FACTS_SECONDS = 30.0  # the heartbeat's image list is read again at most so often
CACHE_MAX_VARIABLE = "LABMGR_IMAGE_CACHE_MAX"
Observe = Callable[[NodeReport], list[dict[str, Any]]]


class Terminals(Protocol):
    def open(
        self, session: str, init: NodeProcess, spawn: ops.SpawnNode, cols: int, rows: int
    ) -> None: ...
    def close_token(self, token: str) -> None: ...


def observe_node(node: NodeReport) -> list[dict[str, Any]]:
    """A node's interfaces as the executor read them from the kernel at the end of the
    apply, on the job's own sockets (not `lo`, nor a host-network node's: those are the
    host's)."""
    if node.netns is None:
        return []
    return [
        {"ifname": i.name, "mac": i.mac, "addresses": list(i.addresses)}
        for i in node.interfaces
        if i.name != "lo"
    ]


class Agent:
    def __init__(
        self,
        executor: Executor,
        send: Send,
        host: str | None = None,
        observe: Observe = observe_node,
        terminals: Terminals | None = None,
        signer: Signer | None = None,
        uploads: Uploads | None = None,
    ) -> None:
        self.executor = executor
        self.send = send
        self.host = host or config.host_name()
        self.observe = observe
        self.terminals = terminals
        # None only where no broker is involved (jobs driven in-process); then a job cut
        # by a crash is run again as recorded.
        self.signer = signer
        self.uploads = uploads  # None: no broker to read uploaded archives from
        self.jobs = JobLog(executor.data_dir / "jobs")
        self.lock = threading.Lock()
        self._image_facts: list[ImageFact] = []
        self._image_facts_read = float("-inf")  # monotonic; -inf: to be read again
        self._image_store_error = ""  # why the store could not be read last, once logged
        # Live changes: each deployment's journal and plan as last read, by token, with
        # the journal file's (inode, size, mtime) they were read at.
        self._live_plans: dict[str, tuple[tuple[int, int, int], Record, ops.HostPlan]] = {}
        self._jobs: dict[Job, Callable[..., Any]] = {
            Job.APPLY: self._apply,
            Job.DESTROY: self._destroy,
            Job.CHECK: self._check,
            Job.EXEC: self._exec,
            Job.SWEEP: self._sweep,
            Job.IMAGE_PULL: self._image_pull,
            Job.IMAGE_REMOVE: self._image_remove,
            Job.IMAGE_PRUNE: self._image_prune,
            Job.IMAGE_LOAD: self._image_load,
            Job.LIVE: self._live,
        }

    # --- running a job once ---------------------------------------------------------------

    def run(
        self,
        task_id: str | None,
        job: Job,
        kwargs: dict[str, Any],
        signed: dict[str, Any] | None = None,
    ) -> Any:
        """Run a job, or answer a duplicate delivery of a finished one from the log.
        `signed`: the message it came in, kept with the job so that a restart runs it
        again only while the control plane's signature still holds."""
        record = self.jobs.read(task_id) if task_id else None
        if record is not None and record.get("state") == "done":
            log.info("%s %s delivered again: reporting its result again", job, task_id)
            for task, report in record.get("reports", []):
                self.send(task, report)
            return record.get("value")
        with self.lock:
            if task_id:
                self.jobs.start(task_id, job, kwargs, signed)
            reporter = Reporter(self.send)
            try:
                value = self._jobs[job](reporter, **kwargs)
            except Exception as exc:  # a bug: still answer, so nothing waits forever
                log.exception("%s %s failed", job, task_id)
                value = None
                error = one_line(f"the agent failed: {type(exc).__name__}: {exc}")
                if job in (Job.APPLY, Job.DESTROY) and "deployment" in kwargs:
                    reporter.result(kwargs["deployment"], job, False, error)
                elif (action := job.image_action) is not None:
                    self._images_report(reporter, action, False, error)
            if job in (Job.APPLY, Job.DESTROY):
                self._image_facts_read = float("-inf")  # which images are in use changed
            if task_id:
                self.jobs.finish(task_id, reporter.sent, value)
        return value

    def recover(self) -> list[str]:
        """Finish every job and apply a crash left half-done; what was done, as lines.

        A kept job runs again only while the control plane still vouches for it: its
        message must still open with this host's key and be fresh (an agent restarted
        under another install, whose key differs, or long after, drops it). What a dropped
        apply left half-built is removed, as a failed apply's rollback would have."""
        done: list[str] = []
        dropped: set[str] = set()
        self.jobs.prune()
        for path in leftovers(self.executor.data_dir / "uploads"):
            done.append(f"removed {path.name}, an upload a restart cut short")
        for task_id, entry in self.jobs.started():
            kwargs = dict(entry.get("kwargs") or {})
            job = Job.named(entry.get("job"))
            if job is not None and (action := job.image_action) is not None:
                # Not run again (an admin asks again): the Images page hears it ended.
                reporter = Reporter(self.send)
                with self.lock:
                    self._images_report(reporter, action, False, "the agent restarted first")
                self.jobs.finish(task_id, reporter.sent, None)
                done.append(f"{job} {task_id} not run again: the agent restarted")
                continue
            if job is None or not job.rerun:
                gone = {"exit": -1, "stdout": "", "stderr": "agent restarted"}
                self.jobs.finish(task_id, [], gone)
                continue
            signed = entry.get("signed")
            if self.signer is not None:
                try:
                    kwargs = self.signer.open(job.task, signed, task_id).kwargs
                except Refused as exc:
                    log.warning("reconcile: %s %s is not run again: %s", job, task_id, exc)
                    self.jobs.finish(task_id, [], None)
                    if job is Job.APPLY and (token := _token_of(kwargs)) is not None:
                        dropped.add(token)
                    done.append(f"{job} {task_id} not run again: {exc}")
                    continue
            log.info("reconcile: running %s %s again after a restart", job, task_id)
            self.run(task_id, job, kwargs, signed if isinstance(signed, dict) else None)
            done.append(f"{job} {task_id} run again")
        for token in self.executor.journal.tokens():
            record = self.executor.journal.read(token)
            deployment = naming.deployment_from_token(token)
            if record is None or record.state == "applied" or deployment is None:
                continue
            if "plan" not in record.header or token in dropped:
                # A journal cut before its header, or the half of an apply nobody wants now.
                self.executor.destroy(token)
                if token in dropped:
                    done.append(f"{token} removed: its apply is not run again")
                continue
            log.info("reconcile: converging %s, left %s", token, record.state)
            kwargs = {
                "deployment": deployment,
                "plan": record.header["plan"],
                "previous": None,
                "budget": record.budget,  # back into the reservation's cgroup it was put in
            }
            self.run(None, Job.APPLY, kwargs)
            done.append(f"apply {token} converged")
        return done

    # --- apply ----------------------------------------------------------------------------

    def _apply(
        self,
        reporter: Reporter,
        deployment: int,
        plan: dict[str, Any],
        previous: dict[str, Any] | None = None,
        budget: dict[str, Any] | None = None,
        registries: str | None = None,
    ) -> None:
        try:
            decoded = decode(plan)
            host_plan = self._host_plan(decoded, deployment)
            share = decode_budget(budget)
            logins = self._logins(registries)
            # Before a redeploy prunes anything: a deployment cannot change cgroup.
            self.executor.check_move(host_plan.deployment, share)
        except ApplyError as exc:
            reporter.result(deployment, Job.APPLY, False, str(exc))
            return
        token = host_plan.deployment
        job = self.jobs.next_job(token)
        before = self._running_plan(token, previous)
        change = diff(before, host_plan) if before is not None else None
        if change is not None and change.unchanged:
            change = None
        steps = StepGroups(reporter, deployment, job, host_plan, extra=1 if change else 0)
        try:
            if change is not None:
                self._prune(steps, token, change)
            self.executor.progress = steps
            result = self.executor.apply_decoded(decoded, plan, self.host, share, logins)
        except ApplyError as exc:
            if not isinstance(exc, RefusedError | MoveRefusedError):
                steps.rolled_back(str(exc))
            reporter.result(deployment, Job.APPLY, False, str(exc))
            return
        finally:
            self.executor.progress = lambda step: None
        nodes = [self._node(n) for n in result.nodes]
        reporter.result(deployment, Job.APPLY, True, "", nodes, images=dict(result.images))

    def _logins(self, registries: object) -> list[RegistryLogin]:
        """The sealed logins of a message already checked (workers.tasks): one a restart
        runs again may no longer open (a rotated key), which fails the job."""
        try:
            return open_logins(self.signer.key if self.signer else None, registries)
        except (Refused, LoginsError) as exc:
            raise ApplyError(str(exc)) from None

    def _host_plan(self, plan: ops.Plan, deployment: int) -> ops.HostPlan:
        expected = naming.deployment_token(deployment)
        if plan.deployment != expected:
            raise ApplyError(f"the plan is for deployment {plan.deployment}, not {expected}")
        host_plan = plan.for_host(self.host)
        if host_plan is None:
            raise ApplyError(f"the plan has nothing for host {self.host!r}")
        return host_plan

    def _running_plan(self, token: str, previous: dict[str, Any] | None) -> ops.HostPlan | None:
        """What this host runs for the deployment: its journal's plan, which is what the
        kernel has, else the `previous` plan the control plane sent."""
        record = self.executor.journal.read(token)
        data = record.header.get("plan") if record is not None else previous
        if data is None:
            return None
        try:
            return decode(data).for_host(self.host)
        except ApplyError:
            return None

    def _prune(self, steps: StepGroups, token: str, change: HostDiff) -> None:
        removed: list[str] = []
        driver = self.executor.driver()
        try:
            prune(
                driver,
                change,
                token,
                lambda cg: self.executor.data_dir / "run" / cg,
                removed.append,
            )
        finally:
            driver.close()
        summary = (
            f"kept {len(change.kept)}, replaced {len(change.replaced)}, "
            f"added {len(change.added)}, removed {len(change.removed)} nodes"
        )
        steps.extra_step("redeploy", summary, STEP_DONE, "; ".join(removed))

    def _node(self, node: NodeReport) -> dict[str, Any]:
        return {
            "name": node.name,
            "pid": node.pid,
            "netns": node.netns,
            "interfaces": self.observe(node),
            "note": node.note,
        }

    # --- destroy, check, sweep ------------------------------------------------------------

    def _destroy(self, reporter: Reporter, deployment: int, token: str) -> None:
        if token != naming.deployment_token(deployment):
            reporter.result(deployment, Job.DESTROY, False, f"{token!r} is not this deployment")
            return
        if self.terminals is not None:
            self.terminals.close_token(token)
        try:
            removed = self.executor.destroy(token)
        except Exception as exc:  # reported, not raised: the control plane must hear of it
            log.exception("destroying %s failed", token)
            reporter.result(deployment, Job.DESTROY, False, f"{type(exc).__name__}: {exc}")
            return
        self.jobs.forget(token)
        log.info("destroyed %s: %d objects", token, len(removed))
        reporter.result(deployment, Job.DESTROY, True, "")
        self._collect_images(reporter)

    def _collect_images(self, reporter: Reporter) -> None:
        """With LABMGR_IMAGE_CACHE_MAX set, the least recently used images no deployment
        runs go until the store is within it (a destroy may have freed some)."""
        if not os.environ.get(CACHE_MAX_VARIABLE, "").strip():
            return
        try:
            removed = self.executor.images.prune(images_in_use(self.executor.journal), all=False)
        except Exception as exc:  # the destroy is done and reported: log why nothing went
            log.warning("images past %s not collected: %s", CACHE_MAX_VARIABLE, exc)
            return
        if removed:
            log.info("collected images past %s: %s", CACHE_MAX_VARIABLE, ", ".join(removed))
            done = f"removed {', '.join(removed)}: the store was past {CACHE_MAX_VARIABLE}"
            self._images_report(reporter, "prune", True, "", done)

    def _check(self, reporter: Reporter, deployment: int, plan: dict[str, Any]) -> None:
        try:
            host_plan = self._host_plan(decode(plan), deployment)
        except ApplyError as exc:
            refused: DriftArgs = {"deployment": deployment, "missing": [str(exc)], "extra": []}
            reporter.report(ControlTask.DRIFT, **refused)
            return
        missing, extra = drift(self.executor, host_plan)
        found: DriftArgs = {"deployment": deployment, "missing": missing, "extra": extra}
        reporter.report(ControlTask.DRIFT, **found)

    def _sweep(self, reporter: Reporter, live: list[str]) -> dict[str, Any]:
        removed = self.executor.sweep(live)
        for line in removed:
            log.info("sweep removed %s", line)
        return {"removed": removed}

    # --- exec and terminals ---------------------------------------------------------------

    def _exec(
        self,
        reporter: Reporter,
        deployment: int,
        token: str,
        node: str,
        argv: list[str],
        timeout: float,
    ) -> dict[str, Any]:
        journal = self.executor.journal
        found = journal.node(token, node) if token == naming.deployment_token(deployment) else None
        if found is None:
            return {"exit": 127, "stdout": "", "stderr": f"no running node {node!r} in {token}"}
        if not alive(found.init):  # lminit checks again as it enters, by pidfd
            gone = f"node {node!r} of {token} is not running: its init is gone\n"
            return {"exit": 127, "stdout": "", "stderr": gone}
        data_dir = self.executor.data_dir
        processes = Processes(lminit_path(data_dir), data_dir)
        spawn = found.spawn
        env = {"HOSTNAME": spawn.hostname, **dict(spawn.environment)}
        try:
            done = processes.run(
                found.init, Cgroups().procs_files(spawn.cgroup), argv, env, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            return {
                "exit": 124,
                "stdout": _text(exc.stdout),
                "stderr": _text(exc.stderr) + f"timed out after {timeout:g} s\n",
            }
        return {"exit": done.returncode, "stdout": _text(done.stdout), "stderr": _text(done.stderr)}

    def _live(
        self, reporter: Reporter, deployment: int, token: str, changes: list[dict[str, Any]]
    ) -> LiveAnswer:
        """Change running nodes of the deployment (workers.live), all or none."""
        from workers.live import LiveChanges

        found = self._journaled(token) if token == naming.deployment_token(deployment) else None
        if found is None:
            return {
                "ok": False,
                "error": f"no deployment {token} on this host",
                "done": 0,
                "stopped": [],
                "seconds": 0.0,
            }
        record, plan = found
        try:
            return LiveChanges(self.executor, record, plan).run(changes)
        finally:
            # The record in memory now says what the job appended: keep it for the next.
            self._remember(token, record, plan)

    def _journaled(self, token: str) -> tuple[Record, ops.HostPlan] | None:
        """The deployment's journal and this host's plan, decoded once and kept while
        the journal file is unchanged (a live change on a 1,000-node lab does not decode
        its plan again)."""
        key = self._journal_key(token)
        kept = self._live_plans.get(token)
        if key is not None and kept is not None and kept[0] == key:
            return kept[1], kept[2]
        record = self.executor.journal.read(token)
        plan = record.host_plan() if record is not None else None
        if record is None or plan is None:
            self._live_plans.pop(token, None)
            return None
        self._remember(token, record, plan)
        return record, plan

    def _remember(self, token: str, record: Record, plan: ops.HostPlan) -> None:
        key = self._journal_key(token)
        if key is None:
            self._live_plans.pop(token, None)
        else:
            self._live_plans[token] = (key, record, plan)

    def _journal_key(self, token: str) -> tuple[int, int, int] | None:
        try:
            found = self.executor.journal.path(token).stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    # --- the image store ------------------------------------------------------------------

    def image_facts(self) -> list[ImageFact]:
        """The store's images for the heartbeat: as the last image job left them, read
        again after an apply or destroy and every 30 s, but only between jobs (the
        heartbeat never waits for a pull)."""
        stale = time.monotonic() - self._image_facts_read >= IMAGE_FACTS_SECONDS
        if stale and self.lock.acquire(blocking=False):
            try:
                self._read_images()
            finally:
                self.lock.release()
        return self._image_facts

    def _read_images(self) -> list[ImageFact]:
        """The store's listing now (under the job lock), kept for the heartbeat."""
        self._image_facts_read = time.monotonic()
        try:
            self._image_facts = self.executor.images.images(images_in_use(self.executor.journal))
            self._image_store_error = ""
        except Exception as exc:  # a store that cannot be read lists nothing; said once
            if str(exc) != self._image_store_error:
                log.warning("the image store cannot be read: %s", exc)
            self._image_facts, self._image_store_error = [], str(exc)
        return self._image_facts

    def _images_report(
        self, reporter: Reporter, action: ImageAction, ok: bool, error: str, message: str = ""
    ) -> None:
        reporter.images(
            {
                "host": host_slug(self.host),
                "action": action,
                "ok": ok,
                "error": error,
                "message": message,
                "images": self._read_images(),
            }
        )

    def _image_job(
        self, reporter: Reporter, action: ImageAction, work: Callable[[], tuple[str, str]]
    ) -> None:
        """Run `work` (what it did, what it refused), then report it with the whole store;
        what the store or the message makes fail is said in one line, not raised."""
        from workers.images.store import ImageError  # the store is loaded on first use

        try:
            message, refused = work()
        except (ImageError, UploadError, ApplyError) as exc:
            self._images_report(reporter, action, False, one_line(str(exc)))
            return
        self._images_report(reporter, action, not refused, refused, message)

    def _image_pull(self, reporter: Reporter, ref: object, registries: object = "") -> None:
        def pull() -> tuple[str, str]:
            if not isinstance(ref, str) or not ref.strip():
                raise ApplyError("ref: an image reference is needed, like alpine:3.20")
            logins = self._logins(registries)
            image = self.executor.images.ensure(ref, logins=logins)
            return f"pulled {image.ref} ({image.digest})", ""

        self._image_job(reporter, "pull", pull)

    def _image_remove(self, reporter: Reporter, refs: object) -> None:
        def remove() -> tuple[str, str]:
            if (
                not isinstance(refs, list)
                or not refs
                or not all(isinstance(r, str) and r.strip() for r in refs)
            ):
                raise ApplyError("refs: a list of image references or digests is needed")
            used = images_in_use(self.executor.journal)
            removed, kept = self.executor.images.remove(refs, used)
            return ("removed " + ", ".join(removed) if removed else "nothing removed"), "; ".join(
                kept
            )

        self._image_job(reporter, "remove", remove)

    def _image_prune(self, reporter: Reporter, all: object) -> None:
        def prune() -> tuple[str, str]:
            if not isinstance(all, bool):
                raise ApplyError("all: true (every unused image) or false (down to the bound)")
            used = images_in_use(self.executor.journal)
            removed = self.executor.images.prune(used, all=all)
            return ("removed " + ", ".join(removed) if removed else "nothing to remove"), ""

        self._image_job(reporter, "prune", prune)

    def _image_load(
        self, reporter: Reporter, upload: object, chunks: object, sha256: object, name: object
    ) -> None:
        def load() -> tuple[str, str]:
            if name is not None and (not isinstance(name, str) or not name.strip()):
                raise ApplyError("name: a reference to tag the image with, or null")
            if self.uploads is None:
                raise UploadError("upload: this agent has no broker to read uploads from")
            path = self.uploads.fetch(upload, chunks, sha256, self.executor.data_dir / "uploads")
            try:
                images = self.executor.images.load(path, name)
            finally:
                path.unlink(missing_ok=True)
            loaded = ", ".join(f"{image.ref} ({image.digest})" for image in images)
            return f"loaded {loaded}", ""

        try:
            self._image_job(reporter, "load", load)
        finally:
            if self.uploads is not None and isinstance(upload, str):
                self.uploads.discard(upload)

    def terminal_open(self, session: str, token: str, node: str, cols: int, rows: int) -> bool:
        found = self.executor.journal.node(token, node)
        if found is None or self.terminals is None or not alive(found.init):
            log.warning("terminal %s: node %r of %s is not running", session, node, token)
            return False
        self.terminals.open(session, found.init, found.spawn, cols, rows)
        return True


def one_line(text: str, limit: int = 500) -> str:
    """An error as a report carries it: its first line, bounded."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    raw = data.encode() if isinstance(data, str) else data
    return raw[:MAX_OUTPUT].decode(errors="replace")


def _token_of(kwargs: dict[str, object]) -> str | None:
    deployment = kwargs.get("deployment")
    return naming.deployment_token(deployment) if isinstance(deployment, int) else None
