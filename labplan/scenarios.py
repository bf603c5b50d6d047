"""Scenarios: named, timed lists of actions on a running lab (labfile 2 `scenarios`, or
sent with a run). A step is `at` (from the run's start) and one action: a live change in
labplan.live's words (set, down, up, restore, stop, start, restart, kill), a command
(`exec: {node: r1, command: [ping, -c1, r2]}`), or a check (`check: connectivity`).

Each step's action is checked against the lab here, naming its field
(`scenarios.flap.1.down`): what it names must be in the lab. Whether it makes sense at
its moment (starting a node that runs) is for the run to say, as a result. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from labplan.errors import FieldError
from labplan.fields import SCENARIO_ACTIONS
from labplan.live import NODE_VERBS, VERBS, LiveError, interfaces, parse
from labplan.model import Labfile, Scenario, ScenarioStep
from labplan.structure import INVALID, Checker, join
from labplan.units import format_time

CHECKS = ("connectivity",)
MAX_EXEC_TIMEOUT = 60.0  # seconds: as a node's exec commands
MAX_ARGUMENTS = 256


def check_scenarios(checker: Checker, lab: Labfile, raw: object) -> tuple[Scenario, ...]:
    """The lab's scenarios from their checked tree, each step's action checked against
    `lab`; errors go to `checker`."""
    if not isinstance(raw, Mapping):
        return ()
    scenarios: list[Scenario] = []
    for name, steps in raw.items():
        if steps is INVALID or not isinstance(steps, list):
            continue
        checked = steps_of(lab, steps, f"scenarios.{name}")
        for error in checked[1]:
            checker.error(error.path, error.message)
        scenarios.append(Scenario(str(name), checked[0]))
    return tuple(sorted(scenarios, key=lambda s: s.name))


def steps_of(
    lab: Labfile, steps: list[Any], path: str
) -> tuple[tuple[ScenarioStep, ...], list[FieldError]]:
    """Checked steps (`{"at": microseconds, ACTION: value}` each, as the structure pass
    leaves them) and the errors of those that do not fit the lab."""
    errors: list[FieldError] = []
    result: list[ScenarioStep] = []
    last = 0
    for index, step in enumerate(steps):
        where = join(path, index)
        if step is INVALID or not isinstance(step, Mapping):
            continue
        at = int(step["at"])
        if at < last:
            errors.append(
                FieldError(
                    join(where, "at"),
                    f"{format_time(at)} comes before the step above ({format_time(last)}): "
                    "write the steps in the order they run",
                )
            )
        last = max(last, at)
        verb, value = next((k, v) for k, v in step.items() if k != "at")
        errors += [
            FieldError(join(where, e.path) if e.path else where, e.message)
            for e in action_errors(lab, verb, value)
        ]
        result.append(ScenarioStep(at, json.dumps({verb: value}, sort_keys=True)))
    return tuple(result), errors


def action_errors(lab: Labfile, verb: str, value: object) -> list[FieldError]:
    """What is wrong with the action for this lab; paths start at the verb ("down",
    "exec.node")."""
    if verb not in SCENARIO_ACTIONS:
        return [
            FieldError(verb, f"unknown action (a step's actions: {', '.join(SCENARIO_ACTIONS)})")
        ]
    if verb in VERBS:
        try:
            action = parse({verb: value})
            if verb in NODE_VERBS or action.target.kind == "node":
                if action.target.name not in {n.name for n in lab.nodes}:
                    return [FieldError(verb, f"the lab has no node {action.target.name!r}")]
            else:
                interfaces(lab, action)
        except LiveError as exc:
            return exc.errors
        return []
    if verb == "check":
        if value not in CHECKS:
            return [FieldError("check", f"{value!r} is not a check; write check: connectivity")]
        return []
    return _exec_errors(lab, value)


def _exec_errors(lab: Labfile, value: object) -> list[FieldError]:
    if not isinstance(value, Mapping):
        return [FieldError("exec", "write exec: {node: r1, command: [ping, -c1, 10.0.0.2]}")]
    errors = [
        FieldError(f"exec.{key}", "unknown key (known keys: node, command, timeout)")
        for key in value
        if key not in ("node", "command", "timeout")
    ]
    node = value.get("node")
    if node not in {n.name for n in lab.nodes}:
        errors.append(FieldError("exec.node", f"the lab has no node {node!r}"))
    command = value.get("command")
    if (
        not isinstance(command, list)
        or not command
        or len(command) > MAX_ARGUMENTS
        or not all(isinstance(word, str) for word in command)
    ):
        errors.append(
            FieldError("exec.command", "write the command as a list of words, like [ping, -c1, r2]")
        )
    timeout = value.get("timeout", 10)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_EXEC_TIMEOUT
    ):
        errors.append(
            FieldError("exec.timeout", f"seconds, more than 0 and at most {MAX_EXEC_TIMEOUT:g}")
        )
    return errors


def check_run(lab: Labfile, raw: object) -> tuple[tuple[ScenarioStep, ...], list[FieldError]]:
    """Steps sent with a run (not in the labfile): the same checks, paths from `steps`."""
    checker = Checker(version=2)
    from labplan.fields import SCENARIOS

    assert SCENARIOS.item is not None
    tree = checker.check(SCENARIOS.item, raw, "steps")
    if checker.count or not isinstance(tree, list):
        return (), checker.errors
    return steps_of(lab, tree, "steps")
