"""Previews of a send step: what ``loyaloop render`` prints and the console shows, made one way.

A preview renders a step's template for a profile (a real one, or the sample built from the
examples in ``catalogue.yaml``) with the trigger event (given, or the catalogue's example), through
the same :class:`~orchestrator.language.render.Renderer` the workers use, so what a marketer
previews is what a customer gets.  A voucher step shows a code shaped like the pool's real ones
(a generated pool's format under a throw-away key), never a code taken from a pool; an answer an
``action`` step keeps (``step.<save_as>``) is the endpoint's declared ``example``, never a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestrator.language.catalogue import Catalogue
from orchestrator.language.endpoints import Endpoint
from orchestrator.language.journey import ActionStep, EventTrigger, Journey, SendStep
from orchestrator.language.profile import Profile
from orchestrator.language.render import RenderedContent, Renderer, build_context
from orchestrator.language.vouchers import VoucherPool, generated_code

PREVIEW_ID = "preview"


def sample_profile(catalogue: Catalogue | None, locale: str) -> Profile:
    """The preview customer: the catalogue's example attributes, in ``locale``."""
    attributes = catalogue.example_attributes() if catalogue else {}
    return Profile(id=PREVIEW_ID, locale=locale, attributes=attributes)


def sample_event(catalogue: Catalogue | None, journey: Journey) -> dict[str, Any]:
    """The catalogue's example of the journey's trigger event (empty for schedules and dates)."""
    if catalogue is not None and isinstance(journey.trigger, EventTrigger):
        return catalogue.example_event(journey.trigger.event)
    return {}


def sample_voucher(vouchers: Mapping[str, VoucherPool], pool: str | None) -> dict[str, str] | None:
    """What a preview shows for ``{{ voucher.code }}``."""
    if pool is None:
        return None
    spec = vouchers.get(pool)
    if spec is not None and spec.kind == "generated":
        return {"code": generated_code(b"preview", pool, "preview", spec)}
    return {"code": "SAMPLE-CODE"}


def sample_saved(journey: Journey, endpoints: Mapping[str, Endpoint]) -> dict[str, Any]:
    """What a preview shows for ``{{ step.<save_as> }}``: each saving step's endpoint ``example``."""
    saved: dict[str, Any] = {}
    for step in journey.steps:
        if isinstance(step, ActionStep) and step.save_as is not None:
            spec = endpoints.get(step.action)
            saved[step.save_as] = dict(spec.example) if spec is not None and spec.example is not None else {}
    return saved


def render_step(
    renderer: Renderer,
    journey: Journey,
    step: SendStep,
    profile: Profile,
    *,
    event: Mapping[str, Any],
    now: datetime,
    vouchers: Mapping[str, VoucherPool],
    channel: str | None = None,
    locale: str | None = None,
    public_url: str = "",
    endpoints: Mapping[str, Endpoint] | None = None,
) -> RenderedContent:
    """The message ``profile`` would get from ``step`` on ``channel`` (default: its first) in ``locale``
    (default: the profile's, then the renderer's default).  A marketing journey's unsubscribe link
    points at ``public_url`` with a placeholder token (the real one is signed per customer at send
    time), as ``loyaloop render`` shows it."""
    context = build_context(
        profile.context(),
        event=event,
        trigger=event,
        journey_id=journey.id,
        journey_name=journey.name,
        step_id=step.id,
        now=now,
        unsubscribe_url=f"{public_url.rstrip('/')}/u/PREVIEW-TOKEN" if journey.category == "marketing" else "",
        voucher=sample_voucher(vouchers, step.voucher),
        saved=sample_saved(journey, endpoints or {}),
    )
    chosen = locale or profile.locale or renderer.default_locale
    return renderer.render(channel or step.send, step.template, chosen, context)
