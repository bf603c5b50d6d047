"""Live changes of a running deployment (docs/live.md): one action at a time, from the
API, the lab page, the command line or a scenario, made by the agents of the nodes'
hosts (`labmgr.agent.live`) and kept as a step of the deployment's history with who
asked.

The deployment's `live` holds what differs from its labfile now (labplan.live.State), so
the lab page shows each link's state and impairments and `restore` knows the way back. A
change the kernel refuses is undone by the agent; the state stays as it was, but for the
nodes the answer says are stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from django.contrib.auth.models import User
from django.db import transaction

from labmgr import events
from labmgr.deployments import dispatch, placement
from labmgr.deployments.choices import DeploymentStatus, StepStatus
from labmgr.deployments.models import Deployment, DeploymentStep
from labmgr.deployments.selectors import deployment_node_hosts
from labmgr.deployments.services.create import deployment_step_add
from labmgr.errors import ApplicationError, Conflict, NotAllowed
from labmgr.labs import selectors as lab_selectors
from labplan import labfile as labfile_module
from labplan import live
from labplan.errors import LabfileError
from labplan.messages import LiveChange


class LiveRefused(ApplicationError):
    """The kernel refused the change; nothing of it stayed."""

    status = 409


class LiveOutcome(TypedDict):
    deployment: int
    action: str  # in words: "set loss 30% on link r1:eth1"
    ok: bool
    error: str
    live: dict[str, Any]  # the state now
    seconds: float  # the agents' time for the change


def deployment_live(*, deployment: Deployment, actor: User, action: object) -> LiveOutcome:
    """Make one live change (labplan.live's grammar) on the running deployment; a bad
    action raises ApplicationError naming its field, a kernel's refusal LiveRefused
    (after it is kept in the history)."""
    if not lab_selectors.lab_can_change(user=actor, lab=deployment.lab):
        raise NotAllowed("This lab is shared with you to read; only its owner may change it.")
    try:
        parsed = live.parse(action)
    except live.LiveError as exc:
        raise _invalid(exc) from None
    with transaction.atomic():
        locked = Deployment.objects.select_for_update(of=("self",)).get(pk=deployment.pk)
        if locked.status != DeploymentStatus.RUNNING:
            raise Conflict.for_field(
                "status",
                f"Live changes are made only to a running lab; this one is {locked.status}.",
            )
        model = labfile_module.validate(locked.labfile)
        before = live.State.from_dict(locked.live)
        try:
            changes, after = live.plan(model, before, parsed)
        except live.LiveError as exc:
            raise _invalid(exc) from None
        outcome = _make(locked, changes, before, after)
        locked.live = outcome["state"].to_dict()
        locked.save(update_fields=["live", "updated"])
        words = parsed.describe()
        step = deployment_step_add(
            deployment=locked,
            name="live",
            status=StepStatus.SUCCEEDED if outcome["ok"] else StepStatus.FAILED,
            message=words if outcome["ok"] else f"{words}: {outcome['error']}",
            target=str(parsed.target)[:200],
            seconds=outcome["seconds"],
            actor=actor.get_username(),
        )
        _publish(locked, step, words, outcome, actor)
    result: LiveOutcome = {
        "deployment": locked.pk,
        "action": words,
        "ok": outcome["ok"],
        "error": outcome["error"],
        "live": locked.live,
        "seconds": outcome["seconds"],
    }
    if not outcome["ok"]:
        raise LiveRefused(
            f"The change was refused and undone: {outcome['error']}",
            {parsed.verb: [outcome["error"]]},
        )
    return result


def deployment_live_state(deployment: Deployment) -> dict[str, Any]:
    """The live state the lab page and `labmgr inspect` show: every interface a change
    can reach, with its impairments now and whether it is up, and every node's state."""
    state = live.State.from_dict(deployment.live)
    try:
        model = labfile_module.validate(deployment.labfile)
    except LabfileError:  # a snapshot an older version took: nothing to change live
        return {"interfaces": [], "nodes": [], "links": []}
    known = live.baseline(model)
    networks = {f"{node.name}:{a.ifname}": a.network for node in model.nodes for a in node.networks}
    interfaces = [
        {
            "interface": endpoint,
            "network": networks.get(endpoint),  # None: a link's end
            "impairments": state.impairments.get(endpoint, live.impairments_document(shaping)),
            "changed": endpoint in state.impairments,
            "up": endpoint not in state.down,
            # Its node is stopped: down until the node starts (then as `up` says).
            "parked": endpoint.split(":", 1)[0] in state.stopped,
        }
        for endpoint, shaping in sorted(known.items())
    ]
    return {
        "interfaces": interfaces,
        "links": [[end.endpoint for end in link.ends] for link in model.links],
        "nodes": [
            {"node": n.name, "state": live.STOPPED if n.name in state.stopped else "running"}
            for n in model.nodes
        ],
    }


# --- helpers ---------------------------------------------------------------------------


class _Made(TypedDict):
    ok: bool
    error: str
    seconds: float
    state: live.State


def _make(
    deployment: Deployment,
    changes: list[dict[str, Any]],
    before: live.State,
    after: live.State,
) -> _Made:
    """Send each host its changes, in order; the first refusal stops the rest."""
    if not changes:
        return {"ok": True, "error": "", "seconds": 0.0, "state": after}
    hosts = deployment_node_hosts(deployment)
    batches: list[tuple[str, list[LiveChange]]] = []
    for change in changes:
        slug = hosts.get(str(change["node"]), "")
        if batches and batches[-1][0] == slug:
            batches[-1][1].append(_typed(change))
        else:
            batches.append((slug, [_typed(change)]))
    seconds = 0.0
    for slug, batch in batches:
        host = placement.host_require_online(
            deployment.hosts.filter(slug=slug).first() or deployment.host
        )
        answer = dispatch.live(
            host=host.slug, deployment=deployment.pk, token=deployment.token, changes=batch
        )
        seconds += answer["seconds"]
        if not answer["ok"]:
            kept = before.copy()
            for node in {str(c["node"]) for c in batch}:
                (kept.stopped.add if node in answer["stopped"] else kept.stopped.discard)(node)
            return {"ok": False, "error": answer["error"], "seconds": seconds, "state": kept}
    return {"ok": True, "error": "", "seconds": seconds, "state": after}


def _typed(change: Mapping[str, Any]) -> LiveChange:
    return cast(LiveChange, dict(change))  # labplan.live makes each in LiveChange's shape


def _invalid(exc: live.LiveError) -> ApplicationError:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        errors.setdefault(error.path or "action", []).append(error.message)
    first = exc.errors[0] if exc.errors else None
    return ApplicationError(str(first) if first else "The action is not valid.", errors)


def _publish(
    deployment: Deployment, step: DeploymentStep, words: str, outcome: _Made, actor: User
) -> None:
    group = [events.lab_group(deployment.lab_id)]
    events.publish(
        group,
        {
            "type": "deployment.step",
            "lab": deployment.lab_id,
            "deployment": deployment.pk,
            "seq": step.seq,
            "name": step.name,
            "target": step.target,
            "status": step.status,
            "message": step.message,
            "total": None,
            "seconds": step.seconds,
            "host": None,
            "actor": step.actor,
        },
    )
    events.publish(
        group,
        {
            "type": "deployment.live",
            "lab": deployment.lab_id,
            "deployment": deployment.pk,
            "live": deployment_live_state(deployment),
            "action": words,
            "ok": outcome["ok"],
            "error": outcome["error"],
            "actor": actor.get_username(),
        },
    )
