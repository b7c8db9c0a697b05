"""The Python API and ``loyaloop import`` door: what an attacker (or a broken feed) sends is refused
before anything is stored, and what is accepted can be handled by every later stage.

Reproductions of a probe of the intake: contact points with header injection and NUL bytes stored
as they were; an identify that answered an error after writing the profile and a consent; an
event nested 300 deep accepted, half-applied and its id blocked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import plugins
from orchestrator.errors import InputError
from orchestrator.language.inputs import MAX_DEPTH
from orchestrator.store import keys
from tests.runtime.harness import Harness, journey

WELCOME = journey(
    {
        "id": "welcome",
        "name": "Welcome",
        "trigger": {"event": "signup"},
        "steps": [{"id": "hello", "send": "email", "template": "hello"}],
    }
)


@pytest.fixture
def harness(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, [WELCOME])
    yield harness
    harness.stop()


def nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return {"x": value}


def stored_keys(harness: Harness, customer_id: str) -> list[str]:
    return sorted(harness.client.scan_iter(f"*{{{customer_id}}}*"))


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"email": "not an email\r\nBcc: x@evil"}, "email"),
        ({"email": "a@example.com\u0000"}, "email"),
        ({"phone": "\u0000"}, "phone"),
        ({"phone": "0612345678"}, "phone"),  # no country code: ambiguous, refused
        ({"phone": 31612345678}, "phone"),
        ({"push_token": "tok en\n"}, "push_token"),
        ({"first_name": "Mallory", "email": "m@example.com", "consent": {"email": True, "": True}}, "consent"),
        ({"first_name": "Mallory", "consent": {"Email!": True}}, "consent"),
        ({"consent": {f"c{n}": True for n in range(2_400)}}, "consent"),
        ({"first_name": "Mallory", "deep": nested(300)["x"]}, "attributes"),
    ],
)
def test_identify_refuses_bad_contact_points_and_consent_before_writing(
    harness: Harness, attributes: dict[str, Any], field: str
) -> None:
    """A refused identify stores nothing at all: no profile, no consent, no history."""
    with pytest.raises(InputError) as refused:
        harness.api.identify("partial-1", attributes)
    assert refused.value.field == field
    assert stored_keys(harness, "partial-1") == []
    assert "not an email" not in str(refused.value) and "evil" not in str(refused.value)


def test_contact_points_are_stored_normalised(harness: Harness) -> None:
    """E-mail domains are lower-cased and phone numbers kept in E.164, so every channel, the
    suppression list and inbound webhooks compare the same text."""
    profile = harness.api.identify("c1", {"email": "Ada@Example.COM", "phone": "+31 6 1234 5678"})
    assert (profile.email, profile.phone) == ("Ada@example.com", "+31612345678")
    assert harness.runtime.store.get_profile("c1").phone == "+31612345678"


def test_an_event_nested_too_deep_is_refused_at_the_door_and_its_id_stays_free(harness: Harness) -> None:
    """The probe's body (properties 300 levels deep) is refused by track, queues nothing, and the
    same event id sent again with a valid body is handled once, entering the journey."""
    with pytest.raises(InputError) as refused:
        harness.api.track("deep-2", "signup", nested(300), event_id="deep-ev-1")
    assert refused.value.field == "properties"
    assert harness.api.events.depth() == 0
    harness.api.identify("deep-2", {"email": "d2@example.com", "consent": {"email": True}})
    harness.start()
    harness.api.track("deep-2", "signup", {"x": 1}, event_id="deep-ev-1")
    harness.settle()
    assert [m["customer_id"] for m in harness.outbox()] == ["deep-2"]
    assert harness.client.hget(keys.seen_events("deep-2"), "deep-ev-1") is not None


def test_properties_at_the_depth_limit_go_through_every_stage(harness: Harness) -> None:
    """An event exactly ``MAX_DEPTH`` deep is accepted, queued, decoded and handled."""
    harness.api.identify("deep-3", {"email": "d3@example.com", "consent": {"email": True}})
    harness.start()
    harness.api.track("deep-3", "signup", nested(MAX_DEPTH - 1), event_id="deep-ev-2")
    harness.settle()
    assert [m["customer_id"] for m in harness.outbox()] == ["deep-3"]
    assert harness.client.llen(keys.dead_events()) == 0


def test_import_refuses_deep_and_bad_contact_lines_with_their_numbers(harness: Harness, tmp_path: Path) -> None:
    lines = [
        {"type": "identify", "customer_id": "i1", "attributes": {"email": "bad\r\nBcc: x@evil"}},
        {"type": "track", "customer_id": "i1", "event": "signup", "properties": nested(300)},
        {"type": "identify", "customer_id": "i2", "attributes": {"phone": "+31612345678"}},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    report = harness.api.import_file(path, progress=False)
    assert report.imported == 1
    assert [(number, reason.split(" ")[0]) for number, reason in report.refused] == [(1, "email"), (2, "properties")]
    assert stored_keys(harness, "i1") == []


def test_consent_is_refused_for_a_channel_that_is_not_there(harness: Harness) -> None:
    """With the channels known (as every production door knows them), a made-up channel is refused
    with the known ones named, and nothing is stored."""
    harness.api.consent_channels = plugins.consent_channels(plugins.build_channels(harness.runtime.settings))
    assert harness.api.consent_channels == frozenset({"email", "sms", "push"})
    with pytest.raises(InputError, match="known: email, push, sms") as refused:
        harness.api.identify("partial-2", {"first_name": "Mallory", "consent": {"email": True, "whatsapp": True}})
    assert refused.value.field == "consent"
    assert stored_keys(harness, "partial-2") == []
    assert harness.api.identify("partial-2", {"consent": {"sms": True}}).consent == {"sms": True}
