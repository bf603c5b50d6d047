"""The host agent's daemon, `python -m workers agent`: a Celery worker for this host's
queue plus a heartbeat, the metrics sampler and the terminal sessions.

On start it becomes a child subreaper (node inits stay its descendants and are reaped at
once), finishes what a crash cut short (`Agent.recover`), then serves. Jobs run one
at a time on the main thread (solo pool: kernel changes are serial, and `setns` moves
only the thread that calls it). Labs keep running across a restart: their processes do
not depend on the agent, and sampling resumes from the journal. If Redis goes away the
worker, the heartbeat and the sampler keep trying until it is back.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from labplan.messages import ControlTask, HeartbeatArgs, ImageFact
from workers import config
from workers.agent import Agent
from workers.celery_app import host_queue, host_slug, make_app, redis_client_url, redis_url
from workers.executor import Executor
from workers.hostguard import network_facts
from workers.images.transfer import Uploads
from workers.init.build import NotBuilt
from workers.kernel import syscalls
from workers.kernel.ceiling import host_ceiling
from workers.kernel.cgroups import Cgroups
from workers.keys import NoKey, Signer, key_path
from workers.metrics import MetricsLoop, Sampler
from workers.tasks import celery_send, register
from workers.terminal import Terminals
from workers.wiring import kernel_executor

log = logging.getLogger("labmgr.agent")

HEARTBEAT_SECONDS = 5.0


def capacity() -> dict[str, int]:
    """What the host offers labs: CPUs, memory (bytes) and process ids."""
    memory = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
    with open("/proc/sys/kernel/pid_max") as pid_max:
        pids = int(pid_max.read())
    return {"cpus": os.cpu_count() or 1, "memory": memory, "pids": pids}


class Heartbeat(threading.Thread):
    """Tells the control plane every few seconds that this host lives, what it can do
    (its images too), and which deployments it holds (the tokens of its journal)."""

    def __init__(
        self,
        executor: Executor,
        send: Callable[[str, Mapping[str, Any]], None],
        host: str,
        interval: float = HEARTBEAT_SECONDS,
        images: Callable[[], list[ImageFact]] | None = None,
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.executor, self.send, self.host, self.interval = executor, send, host, interval
        self.images = images  # the store's listing, cached by the agent (Agent.image_facts)
        self.stopping = threading.Event()

    def beat(self) -> None:
        driver = self.executor.driver()  # on this thread, in the host's root namespace
        try:
            network = network_facts(driver)
        finally:
            driver.close()
        facts = {
            **self.executor.facts.to_dict(),
            **network,
            "capacity": capacity(),
            "hostname": socket.gethostname(),
            "images": self.images() if self.images is not None else [],
        }
        beat: HeartbeatArgs = {
            "host": self.host,
            "facts": facts,
            "tokens": self.executor.journal.tokens(),
            "sent": time.time(),
        }
        self.send(ControlTask.HEARTBEAT, beat)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.beat()
            except Exception:
                log.warning("heartbeat not sent", exc_info=True)
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LABMGR_AGENT_LOG_LEVEL", "INFO"),
        format="%(asctime)s agent %(levelname)s %(message)s",
    )
    syscalls.set_child_subreaper()
    # Files the agent writes for nodes (hosts files, logs, layers) are read inside them;
    # its own state (journal, jobs, key) is made 0600 in 0700 directories explicitly.
    os.umask(0o022)
    url, host = redis_url(), config.host_name()
    slug, queue = host_slug(host), host_queue(host)
    underlay = config.underlay()  # a bad value stops the agent here, with the reason
    # Before anything else, all labs together are held below the host's reserve (labs
    # still running from before a restart too); a bad LABMGR_AGENT_RESERVE_* stops here.
    Cgroups().ensure_parent()
    ceiling = host_ceiling()
    app = make_app(url, host)
    try:
        executor = kernel_executor(root_netns=config.root_netns())
    except NotBuilt as exc:
        log.error("%s. The agent runs every node under the node init that set-up builds.", exc)
        return 2
    try:
        signer = Signer(key_path(executor.data_dir), slug)
    except NoKey as exc:
        log.error(
            "%s. The agent acts only on messages signed with its host's key: an admin "
            "registers host %r in labmgr (`python manage.py host_register %s`, or Hosts in "
            "the admin) and installs the key it gives here: "
            "`python -m workers key set < KEYFILE` as root.",
            exc,
            slug,
            slug,
        )
        return 2
    terminals = Terminals(url, executor.data_dir)
    uploads = Uploads(redis.Redis.from_url(redis_client_url(url)))
    agent = Agent(
        executor,
        celery_send(app, signer),
        host,
        terminals=terminals,
        signer=signer,
        uploads=uploads,
    )
    register(app, agent, signer)
    log.info(
        "agent of host %r (queue %s, underlay %s), data in %s",
        host,
        queue,
        underlay or "none",
        executor.data_dir,
    )
    log.info(
        "labs together get at most %g CPUs, %d bytes of memory and %d processes",
        ceiling.cpus,
        ceiling.memory,
        ceiling.pids,
    )
    for line in agent.recover():
        log.info("reconcile: %s", line)
    quick = celery_send(app, signer, retry=False)  # a lost heartbeat or batch is replaced soon
    threads: list[Heartbeat | MetricsLoop] = [
        Heartbeat(executor, quick, slug, images=agent.image_facts),
        MetricsLoop(Sampler(executor.data_dir / "journal"), quick, slug),
    ]
    for thread in threads:
        thread.start()
    # What starting made lives as long as the agent: kept out of the garbage collector's
    # sight, a full collection during a job only walks what the job made.
    gc.freeze()
    worker = app.Worker(
        pool="solo",
        concurrency=1,
        queues=[queue],
        hostname=f"agent@{slug}",
        loglevel=os.environ.get("LABMGR_AGENT_LOG_LEVEL", "INFO"),
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    try:
        worker.start()
    finally:
        for thread in threads:
            thread.stop()
        terminals.close_all()
    return int(worker.exitcode or 0)
