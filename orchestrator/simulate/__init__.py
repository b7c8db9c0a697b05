"""``loyaloop simulate``: a shop's event history through the production runtime on a virtual clock.

Owns reading the history (:mod:`~orchestrator.simulate.source`), the loop that moves the virtual
clock (:mod:`~orchestrator.simulate.driver`), the recorder channels and the witness of decisions
(:mod:`~orchestrator.simulate.recorder`), the fatigue calendar (:mod:`~orchestrator.simulate.calendar`)
and the comparison of two runs (:mod:`~orchestrator.simulate.compare`).  There is no second engine,
gate or renderer here: every decision is made by the runtime a worker runs.

A layer between ``cli`` and ``http``: it drives the ``workers`` layer's scheduler and timer firing
(and, in the equivalence test, its embedded Dramatiq workers), so it sits above them; only the CLI
imports it (checked by import-linter, see docs/architecture.md).
"""
