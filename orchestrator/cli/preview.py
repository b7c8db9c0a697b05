"""What ``loyaloop render`` prints: one message, or with ``--all-steps`` a journey walked for one
profile (:mod:`orchestrator.engine.walkthrough`) with every message rendered where it goes out."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from typing import Any

from orchestrator.engine.walkthrough import walk
from orchestrator.errors import TemplateError
from orchestrator.language.journey import ActionStep, Journey, SendStep
from orchestrator.language.preview import sample_saved, sample_voucher
from orchestrator.language.profile import Profile
from orchestrator.language.render import RenderedContent, Renderer, build_context
from orchestrator.message import sms_segments
from orchestrator.runtime.actions import body_of
from orchestrator.settings import Settings


def walk_text(
    journey: Journey,
    profile: Profile,
    event: dict[str, Any],
    start: datetime,
    settings: Settings,
    renderer: Renderer,
    locale: str | None,
) -> str:
    """The journey as ``profile`` would live it from ``start``: one block per step, messages rendered."""
    chosen = locale or profile.locale or settings.default_locale
    lines = [
        f"# {journey.id}: every step for profile {profile.id!r} (locale {chosen}), entering {start:%Y-%m-%d %H:%M %Z}",
        "# sends are taken as sent and waits as timed out; caps, quiet hours and consent are not applied",
    ]
    saved = sample_saved(journey, settings.endpoints)
    for item in walk(journey, profile, trigger=event, start=start, settings_timezone=settings.default_timezone):
        offset = _offset(item.at - start)
        lines.append(f"{offset:>9}  {item.step_id or '':<22} {item.kind:<7} {item.detail}")
        if item.kind == "send" and item.send is not None:
            step = journey.step(item.send.step_id)
            voucher = sample_voucher(settings.vouchers, step.voucher if isinstance(step, SendStep) else None)
            ctx = build_context(
                (item.profile or profile).context(),
                event=event,
                trigger=event,
                journey_id=journey.id,
                journey_name=journey.name,
                step_id=item.send.step_id,
                now=item.at,
                voucher=voucher,
                saved=saved,
            )
            try:
                if isinstance(step, ActionStep):  # the body the shop's endpoint would get (nothing is called)
                    text = f"calls {step.action!r} with {json.dumps(body_of(step, ctx), ensure_ascii=False)}"
                else:
                    content = renderer.render(item.send.channels[0], item.send.template, chosen, ctx)
                    text = format_content(content, html=False)
            except TemplateError as exc:
                text = f"cannot render: {exc}"
            lines.append(textwrap.indent(text, " " * 11 + "│ ", lambda line: True))
    return "\n".join(lines)


def _offset(delta: Any) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"+{minutes}m"
    if minutes < 48 * 60:
        return f"+{minutes // 60}h{minutes % 60:02d}"
    return f"+{minutes // 1440}d{(minutes % 1440) // 60:02d}h"


def format_content(content: RenderedContent, *, html: bool = True) -> str:
    """The preview text of a rendered message, as ``render`` prints it (``html=False``: an e-mail's
    subject and text part only, as a journey walk shows it)."""
    lines: list[str] = []
    if content.channel == "sms":
        encoding, segments = sms_segments(content.body)
        lines.append(
            f"SMS: {len(content.body)} characters, {encoding}, {segments} segment{'s' if segments != 1 else ''}"
        )
        lines += ["", content.body]
        return "\n".join(lines)
    if content.subject is not None:
        lines.append(f"Subject: {content.subject}")
    if content.title is not None:
        lines.append(f"Title: {content.title}")
    if content.channel == "push":
        lines.append(f"Body: {content.body}")
        if content.data:
            lines.append(f"Data: {json.dumps(content.data, ensure_ascii=False, sort_keys=True)}")
        return "\n".join(lines)
    lines += ["", "--- text ---", content.body]
    if html and content.html is not None:
        lines += ["", "--- html ---", content.html.strip()]
    if content.data:
        lines += ["", f"Data: {json.dumps(content.data, ensure_ascii=False, sort_keys=True)}"]
    return "\n".join(lines)
