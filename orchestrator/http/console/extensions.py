"""The console's extension points: panels whose figures come from other parts of Loyaloop.

The console shows only exact records.  Three panels need figures it does not compute itself; each
is a callable handed to :func:`~orchestrator.http.console.create_console`, and while it is absent
the page says what will appear there rather than showing a made-up number:

* :class:`LiftSource` — per journey, the measured effect (conversion per arm, lift with its
  interval, entrants per day) from the measurement report (``orchestrator.measure``): the
  overview's lift, keep/change flag and sparkline columns and the journey page's KPI panel.
* :class:`TimelineSource` — per customer, the ``explain`` timeline (entries, every step's decision
  with its reason, messages with provider feedback, staff actions; events from a simulation) and
  the finished runs, for the customer page: :class:`orchestrator.runtime.story.Story`, read from
  Redis (:class:`~orchestrator.runtime.story.StoreStory`, the default) or from a simulation's
  files (:class:`~orchestrator.runtime.story.FolderStory`).
* :class:`RunEnder` — ends a live run (``Runtime.end_run``), for the ``support`` role's "remove
  from journey" action; without it the button is not offered.

Each returns plain data the templates show as they are (escaped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.runtime.story import Story


@dataclass(frozen=True)
class Panel:
    """A titled table: ``columns`` heads, ``rows`` cells as text, ``note`` a sentence under it."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    #: Per journey id on the overview: a short verdict (``keep``, ``change or stop``), shown as a flag.
    flags: dict[str, str] = field(default_factory=dict)


class LiftSource(Protocol):
    def __call__(self, journey_id: str | None, /) -> Panel | None:
        """The lift panel of one journey, or of every journey (``None``: the overview); None when
        nothing is measured yet."""


#: The customer's story (timeline and finished runs), as ``loyaloop explain`` reads it.
TimelineSource = Story


class RunEnder(Protocol):
    def __call__(self, customer_id: str, run_id: str, reason: str) -> bool:
        """End the run as exited with ``reason``; False when it was not live."""
