"""Writes on deployments, one module per concern:

- `create`: the record, its compiled plan (VNIs, underlay addresses) and its step log;
- `status`: the status machine, the one way a status changes (`deployment_transition`,
  `deployment_advance`), each change published as `deployment.status` after commit;
- `jobs`: what is noted when a job is sent to hosts (job number, awaited results);
- `reports`: what agents report (steps, results, nodes, drift), each report idempotent.

What users do to deployments (deploy, destroy, ...) is in `labmgr.deployments.lifecycle`,
built on these. Every service is importable from here.
"""

from labmgr.deployments.services.create import (
    deployment_compile,
    deployment_create,
    deployment_step_add,
    underlay_addresses,
    vni_allocate,
)
from labmgr.deployments.services.jobs import (
    deployment_hosts_await,
    deployment_hosts_destroy,
    deployment_job_sent,
)
from labmgr.deployments.services.reports import (
    deployment_drift_record,
    deployment_nodes_store,
    deployment_result_record,
    deployment_step_record,
)
from labmgr.deployments.services.status import (
    deployment_advance,
    deployment_status_publish,
    deployment_transition,
)

__all__ = [
    "deployment_advance",
    "deployment_compile",
    "deployment_create",
    "deployment_drift_record",
    "deployment_hosts_await",
    "deployment_hosts_destroy",
    "deployment_job_sent",
    "deployment_nodes_store",
    "deployment_result_record",
    "deployment_status_publish",
    "deployment_step_add",
    "deployment_step_record",
    "deployment_transition",
    "underlay_addresses",
    "vni_allocate",
]
