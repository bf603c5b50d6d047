"""The control plane's Celery app: JSON only, explicit task names, routes and the beat.

`labmgr.control.*` tasks run on the control worker (queue `control`, database access);
`labmgr.agent.*` tasks go to one host's queue (`host.<slug>`), chosen per call by
`labmgr.deployments.dispatch`. Every name is labplan.messages' (docs/messages.md).
"""

from __future__ import annotations

import gc
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from django.conf import settings

from labplan.messages import CONTROL_QUEUE, CONTROL_TASK_PREFIX, SCENARIO_QUEUE, BeatTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labmgr.settings")

app = Celery("labmgr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    # A task is acknowledged when done, so a worker dying mid-task leaves it queued; every
    # control task is idempotent, so running one twice changes nothing.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=CONTROL_QUEUE,
    # An exact name wins over the pattern: the scenarios' tick has a worker of its own.
    task_routes={
        str(BeatTask.SCENARIOS_TICK): {"queue": SCENARIO_QUEUE},
        f"{CONTROL_TASK_PREFIX}*": {"queue": CONTROL_QUEUE},
    },
    task_create_missing_queues=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_schedule_filename=str(settings.LABMGR_DATA_DIR / "celerybeat-schedule"),
    beat_schedule={
        "hosts-check": {
            "task": str(BeatTask.HOSTS_CHECK),
            "schedule": settings.LABMGR_HOST_CHECK_EVERY,
        },
        "drift-check": {
            "task": str(BeatTask.DRIFT_CHECK),
            "schedule": settings.LABMGR_DRIFT_CHECK_EVERY,
        },
        "metrics-retention": {
            "task": str(BeatTask.METRICS_RETENTION),
            "schedule": settings.LABMGR_METRICS_DOWNSAMPLE_EVERY,
        },
    },
)
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**_: Any) -> None:
    """What the worker made while starting (Django's apps, models, tasks: hundreds of
    thousands of objects) lives as long as it does: kept out of the garbage collector's
    sight, a full collection during a task only walks what the task made."""
    gc.freeze()
