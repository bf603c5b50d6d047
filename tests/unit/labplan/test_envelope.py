"""Signed messages: what opens, and every way a message that must not act is refused."""

from __future__ import annotations

import json

import pytest

from labplan import envelope
from labplan.envelope import Refused

KEY, OTHER = bytes(range(32)), bytes([1] * 32)
ID = "0123456789abcdef0123456789abcdef"


def sealed(**changes: object) -> dict[str, str]:
    fields: dict[str, object] = {
        "task": "labmgr.agent.apply",
        "host": "lab-1",
        "id": ID,
        "issued": 1000.0,
        "kwargs": {"deployment": 3, "plan": {"é": [1, 2.5, None]}},
    }
    fields.update(changes)
    return envelope.seal(KEY, **fields)  # type: ignore[arg-type]


def open_it(message: object, **changes: object) -> envelope.Opened:
    how: dict[str, object] = {
        "task": "labmgr.agent.apply",
        "host": "lab-1",
        "now": 1010.0,
        "max_age": 60.0,
        "id": ID,
    }
    how.update(changes)
    return envelope.open_(message, [OTHER, KEY], **how)  # type: ignore[arg-type]


def test_a_sealed_message_opens_with_its_arguments_and_says_which_key_signed_it() -> None:
    opened = open_it(sealed())
    assert opened.kwargs == {"deployment": 3, "plan": {"é": [1, 2.5, None]}}
    assert (opened.key, opened.issued, envelope.claimed_host(sealed())) == (1, 1000.0, "lab-1")


@pytest.mark.parametrize(
    ("message", "how", "why"),
    [
        ({"deployment": 3}, {}, "not signed"),
        ("text", {}, "not signed"),
        (sealed(), {"task": "labmgr.agent.destroy"}, "signed as 'labmgr.agent.apply'"),
        (sealed(), {"host": "lab-2"}, "signed for host 'lab-1', not 'lab-2'"),
        (sealed(), {"id": "f" * 32}, "not the one it was signed with"),
        (sealed(), {"now": 2000.0}, "stale: issued 1000 s ago"),
        (sealed(issued=5000.0), {}, "in the future"),
    ],
)
def test_a_message_that_must_not_act_is_refused_with_the_reason(
    message: object, how: dict[str, object], why: str
) -> None:
    with pytest.raises(Refused, match=why):
        open_it(message, **how)


def test_a_message_signed_with_a_key_the_receiver_does_not_hold_is_refused() -> None:
    with pytest.raises(Refused, match="the signature does not match"):
        envelope.open_(
            sealed(), [OTHER], task="labmgr.agent.apply", host="lab-1", now=1010, max_age=60
        )


def test_a_body_changed_on_the_way_no_longer_matches_its_signature() -> None:
    message = sealed()
    body = json.loads(message["body"])
    body["kwargs"]["deployment"] = 4
    tampered = {"body": json.dumps(body, separators=(",", ":")), "mac": message["mac"]}
    with pytest.raises(Refused, match="signature"):
        open_it(tampered)


def test_a_wrapped_key_reads_only_with_the_old_key_and_its_message_id() -> None:
    new = bytes([9] * 32)
    wrapped = envelope.wrap_key(KEY, new, ID)
    assert new.hex() not in wrapped
    assert envelope.unwrap_key(KEY, wrapped, ID) == new
    assert envelope.unwrap_key(OTHER, wrapped, ID) != new
    assert envelope.unwrap_key(KEY, wrapped, "f" * 32) != new


def test_removals_stay_fresh_longer_than_jobs_and_heartbeats_shortest() -> None:
    assert envelope.fresh_for("labmgr.agent.destroy") > envelope.fresh_for("labmgr.agent.apply")
    assert envelope.fresh_for("labmgr.control.heartbeat") == 30.0
    assert envelope.fresh_for("labmgr.agent.exec") == envelope.AGENT_JOB_FRESH_FOR


def test_a_sealed_secret_opens_only_with_its_host_key_and_unchanged() -> None:
    key, other = bytes(range(32)), bytes(32)
    sealed = envelope.seal_secret(key, b'[{"registry": "docker.io", "password": "hunter2"}]')
    assert "hunter2" not in sealed and b"hunter2".hex() not in sealed
    assert (
        envelope.open_secret(key, sealed) == b'[{"registry": "docker.io", "password": "hunter2"}]'
    )
    assert envelope.seal_secret(key, b"x") != envelope.seal_secret(key, b"x")  # fresh nonce
    with pytest.raises(envelope.Refused, match="does not open"):
        envelope.open_secret(other, sealed)
    flipped = sealed[:-1] + ("0" if sealed[-1] != "0" else "1")
    with pytest.raises(envelope.Refused, match="does not open"):
        envelope.open_secret(key, flipped)
    with pytest.raises(envelope.Refused):
        envelope.open_secret(key, "not hex")
