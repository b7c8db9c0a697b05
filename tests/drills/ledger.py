"""The action step of the SIGKILL drill: a loyalty ledger credited once per customer, whatever dies.

The drill's journey calls the ``ledger`` endpoint between its first and second message; the
reference receiver (``orchestrator/cli/reference_receiver.py``) runs in the drill process on loopback,
checks every signature and applies each ``Idempotency-Key`` once.  The worker processes get its URL
and secret through their environment, as ops would set them.

A SIGKILL between the call and the write that records it makes the next worker call again with the
same key: the receiver counts that repeat and answers it with the first answer.  :func:`check`
reads the receiver's record and the outbox back and says, per customer, whether the call arrived,
was applied exactly once (one key per customer, never two), and whether the second message shows
the code the ledger answered with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.cli.reference_receiver import Receiver, running
from tests.drills import support

URL_ENV = "DRILL_LEDGER_URL"
SECRET_ENV = "DRILL_LEDGER_SECRET"
#: Only the drill's loopback receiver knows it; the workers read it from their environment.
SECRET = "drill-ledger-signing-secret-0123456789abcdef"
POINTS = 100

#: The drill journey: a message, the ledger credited (its answer kept), then the two later messages.
JOURNEY = """\
id: drill
name: Drill journey with a ledger call
trigger:
  event: drill.started
re_entry: never
category: transactional
priority: 50
# Never sent: the goal only makes each entry open a measurement window (the SIGKILL drill counts
# every customer's order in it), without ending any run.
goals:
  - event: drill.converted
    within: 1d
steps:
  - id: first
    send: email
    template: drill_first
  - id: credit
    action: ledger
    body:
      customer: "{{{{ profile.id }}}}"
      points: "{{{{ {points} }}}}"
      reason: drill
    save_as: credit
  - id: pause_one
    wait: {wait}
  - id: second
    send: sms
    template: drill_points
  - id: pause_two
    wait: {wait}
  - id: third
    send: email
    template: drill_third
  - id: done
    exit: true
"""

#: The drill's open settings and the ledger endpoint (no rate limit: the drill measures recovery).
SETTINGS = (
    support.OPEN_SETTINGS
    + f"""\
endpoints:
  ledger:
    kind: webhook
    url_env: {URL_ENV}
    secret_env: {SECRET_ENV}
    timeout: 5
"""
)

#: The second message shows what the ledger answered (``step.credit`` is the kept answer).
TEMPLATES = {"sms/drill_points.txt.j2": "You earned {{ step.credit.credited }} points, code {{ step.credit.code }}."}

#: Every step of the journey, in order (each reached once per customer).
STEPS = ("first", "credit", "pause_one", "second", "pause_two", "third", "done")


def journey(wait: str) -> str:
    return JOURNEY.format(wait=wait, points=POINTS)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """The reference receiver on a loopback port, for the drill's lifetime."""
    with running(SECRET.encode()) as started:
        yield started


def environment(started: Receiver) -> dict[str, str]:
    """What the worker processes need to call the receiver (URL and signing secret)."""
    return {URL_ENV: started.url, SECRET_ENV: SECRET}


def add_templates(space: support.Workspace) -> None:
    for name, text in TEMPLATES.items():
        path = space.templates / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@dataclass
class LedgerTally:
    """What the ledger received against one call per customer."""

    customers: int
    calls: int = 0  # signed calls that arrived, repeats included
    keys: int = 0  # distinct Idempotency-Keys among them
    applied: int = 0  # credits applied by the receiver (once per key)
    refused: int = 0  # calls whose signature the receiver refused
    incomplete: int = 0  # requests cut off mid-body by a kill (answered 400, never applied)
    missing: list[str] = field(default_factory=list)  # customers whose call never arrived
    applied_twice: list[str] = field(default_factory=list)  # customers credited under more than one key
    wrong_body: list[str] = field(default_factory=list)  # keys whose body was not this drill's credit
    answer_not_shown: list[str] = field(default_factory=list)  # second messages without the customer's code
    #: How many keys arrived n times (1: once; 2+: repeated after a kill and absorbed).
    arrivals: dict[int, int] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        """Calls that repeated a key already applied (each answered with the first answer)."""
        return self.calls - self.keys

    @property
    def exact(self) -> bool:
        problems = self.missing or self.applied_twice or self.wrong_body or self.answer_not_shown
        return not problems and self.refused == 0 and self.applied == self.customers

    def summary(self) -> str:
        return (
            f"ledger calls {self.calls:,} for {self.customers:,} customers: applied {self.applied:,}, "
            f"repeats absorbed {self.repeats:,} (keys by arrivals {dict(sorted(self.arrivals.items()))}), "
            f"signatures refused {self.refused}, requests cut off by a kill {self.incomplete}, "
            f"missing {len(self.missing)}, applied twice "
            f"{len(self.applied_twice)}, wrong body {len(self.wrong_body)}, second message without the "
            f"saved answer {len(self.answer_not_shown)}"
        )


def check(started: Receiver, outbox: Path, ids: Iterable[str]) -> LedgerTally:
    """The receiver's record and the outbox against one credit per customer, shown in its second message."""
    wanted = list(ids)
    with started.lock:
        calls = list(started.calls)
        applied = dict(started.applied)
        refused, incomplete = started.refused, started.incomplete
    first_body: dict[str, dict[str, Any]] = {}
    arrived: Counter[str] = Counter()
    for key, body in calls:
        first_body.setdefault(key, body)
        arrived[key] += 1
    result = LedgerTally(len(wanted), calls=len(calls), keys=len(arrived), applied=len(applied), refused=refused)
    result.incomplete = incomplete
    result.arrivals = dict(Counter(arrived.values()))
    credited: dict[str, list[str]] = {}
    for key, body in first_body.items():
        if body != {"customer": body.get("customer"), "points": POINTS, "reason": "drill"} or not key.endswith(
            ":credit"
        ):
            result.wrong_body.append(key)
        credited.setdefault(str(body.get("customer")), []).append(key)
    result.missing = [customer for customer in wanted if customer not in credited]
    result.applied_twice = [customer for customer, found in credited.items() if len(found) > 1]
    shown = {line["customer_id"]: line["body"] for line in support.outbox_lines(outbox) if line["step_id"] == "second"}
    for customer in wanted:
        found = credited.get(customer, [])
        code = applied[found[0]]["code"] if found and found[0] in applied else None
        text = shown.get(customer, "")
        if code is None or f"{POINTS} points, code {code}." not in text:
            result.answer_not_shown.append(customer)
    return result
