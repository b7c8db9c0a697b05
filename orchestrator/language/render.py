"""Rendering messages from marketers' templates, in a sandbox, in the customer's language.

Layout: ``templates/<channel>/<name>[.<locale>].<part>.j2``.  A file without a locale is the
default locale's.  A locale is used only when *all* required parts exist in it, so a customer
never gets a Dutch subject over an English body.  ``nl-BE`` falls back to ``nl``, then to the
default.  Only ``.html`` parts are autoescaped: escaping a plain-text SMS would show ``&amp;``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError, UndefinedError

from orchestrator.errors import TemplateError
from orchestrator.language import limits
from orchestrator.language.sandbox import GuardedEnvironment
from orchestrator.message import sms_segments

#: Required and optional parts per built-in channel; other (plugin) channels use ``OTHER_PARTS``.
PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "email": (("subject", "html", "txt"), ()),
    "sms": (("txt",), ()),
    "push": (("title", "body"), ("data",)),
}
OTHER_PARTS: tuple[tuple[str, ...], tuple[str, ...]] = (("txt",), ("subject", "html", "title", "body", "data"))
ALL_PARTS = ("subject", "html", "txt", "title", "body", "data")
LOCALE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$")

#: Context keys a template can always use (``unsubscribe_url`` is empty outside marketing email).
CONTEXT_KEYS = ("profile", "event", "trigger", "journey", "step", "now", "unsubscribe_url")


def required_parts(channel: str) -> tuple[str, ...]:
    """Parts a template for ``channel`` must have in the default locale."""
    return PARTS.get(channel, OTHER_PARTS)[0]


def optional_parts(channel: str) -> tuple[str, ...]:
    """Parts a template for ``channel`` may have."""
    return PARTS.get(channel, OTHER_PARTS)[1]


@dataclass(frozen=True)
class TemplateFile:
    """One file of a template: its locale (None for the default file), part and path."""

    channel: str
    name: str
    locale: str | None
    part: str
    path: Path

    @property
    def loader_name(self) -> str:
        """The name Jinja2's loader knows the file by (always with forward slashes)."""
        return f"{self.channel}/{self.relative}"

    @property
    def relative(self) -> str:
        suffix = f".{self.locale}" if self.locale else ""
        return f"{self.name}{suffix}.{self.part}.j2"


def template_files(templates_dir: Path, channel: str, name: str) -> list[TemplateFile]:
    """Every file of template ``name`` for ``channel``, in any locale."""
    base = templates_dir / channel / name
    folder, stem = base.parent, base.name
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"{stem}.*.j2")):
        pieces = path.name[: -len(".j2")].split(".")
        if pieces[0] != stem or len(pieces) not in (2, 3) or pieces[-1] not in ALL_PARTS:
            continue
        locale = pieces[1] if len(pieces) == 3 else None
        if locale is not None and not LOCALE.match(locale):
            continue
        found.append(TemplateFile(channel, name, locale, pieces[-1], path))
    return found


def _autoescape(template_name: str | None) -> bool:
    return template_name is not None and template_name.endswith(".html.j2")


def environment(
    templates_dir: Path,
    filters: Mapping[str, Callable[..., Any]] | None = None,
    globals: Mapping[str, Any] | None = None,
) -> GuardedEnvironment:
    """The template sandbox: immutable, strict about undefined names, escaping only HTML."""
    env = GuardedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters or {})
    env.globals.update(globals or {})
    return env


@dataclass(frozen=True)
class RenderedContent:
    """A rendered message, ready for a channel: ``body`` is the plain text (email txt, SMS, push body)."""

    channel: str
    template: str
    locale: str
    body: str
    subject: str | None = None
    html: str | None = None
    title: str | None = None
    data: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The plain-text part (same as ``body``)."""
        return self.body

    @property
    def sms(self) -> tuple[str, int]:
        """``(encoding, segments)`` of the body as an SMS."""
        return sms_segments(self.body)


class Renderer:
    """Renders ``templates/<channel>/<name>[.<locale>].<part>.j2`` for one customer."""

    def __init__(
        self,
        templates_dir: Path,
        default_locale: str = "en",
        filters: dict[str, Callable[..., Any]] | None = None,
        globals: dict[str, Any] | None = None,
    ) -> None:
        self.templates_dir = Path(templates_dir)
        self.default_locale = default_locale
        self.env = environment(self.templates_dir, filters, globals)

    def parts_for(self, channel: str) -> list[str]:
        """The parts a template for ``channel`` must have."""
        return list(required_parts(channel))

    def choose(self, channel: str, template: str, locale: str | None) -> tuple[str, dict[str, TemplateFile]]:
        """The locale to use and its part files; raises :class:`TemplateError` if none is complete."""
        files = template_files(self.templates_dir, channel, template)
        by_locale: dict[str | None, dict[str, TemplateFile]] = {}
        for item in files:
            by_locale.setdefault(item.locale, {})[item.part] = item
        need = required_parts(channel)
        fallback = {**by_locale.get(self.default_locale, {}), **by_locale.get(None, {})}
        for candidate in self._candidates(locale):
            parts = by_locale.get(candidate)
            if parts and all(part in parts for part in need):
                # Optional parts (push ``data``) are often language-neutral: take the default's.
                extra = {part: item for part, item in fallback.items() if part not in need}
                return (candidate or self.default_locale), {**extra, **parts}
        if not files:
            raise TemplateError(
                f"no template {template!r} for channel {channel!r}: expected files like "
                f"{self.templates_dir / channel / template}.{need[0]}.j2"
            )
        raise TemplateError(
            f"template {template!r} for channel {channel!r} lacks a complete default version: "
            f"it needs the parts {', '.join(need)}"
        )

    def _candidates(self, locale: str | None) -> list[str | None]:
        wanted: list[str | None] = []
        if locale:
            wanted.append(locale)
            language = re.split(r"[_-]", locale)[0]
            wanted.append(language)
        wanted.extend([self.default_locale, None])
        return list(dict.fromkeys(wanted))

    def render(self, channel: str, template: str, locale: str | None, context: dict[str, Any]) -> RenderedContent:
        """Render every part of a template; any failure is a :class:`TemplateError` naming the part."""
        used, parts = self.choose(channel, template, locale)
        with limits.budget(f"template {channel}/{template}", limits.MESSAGE_SECONDS):
            texts = {part: self._render_part(item, context) for part, item in parts.items()}
        data = _data(texts.pop("data", None), template)
        body = texts.get("body", "") if channel == "push" else texts.get("txt", texts.get("body", ""))
        return RenderedContent(
            channel=channel,
            template=template,
            locale=used,
            body=body.strip(),
            subject=_one_line(texts["subject"]) if "subject" in texts else None,
            html=texts.get("html"),
            title=_one_line(texts["title"]) if "title" in texts else None,
            data=data,
        )

    def _render_part(self, item: TemplateFile, context: dict[str, Any]) -> str:
        where = f"template {item.channel}/{item.relative}"
        try:
            chunks: list[str] = []
            size = 0
            for chunk in self.env.get_template(item.loader_name).generate(context):
                size += len(chunk)
                if size > limits.MAX_OUTPUT:
                    raise limits.RenderLimitExceeded(f"it is longer than {limits.MAX_OUTPUT:,} characters")
                chunks.append(chunk)
            return "".join(chunks)
        except limits.RenderLimitExceeded as exc:
            raise TemplateError(f"{where} is too costly to render: {exc}") from exc
        except RecursionError as exc:
            raise TemplateError(f"{where} calls its macros too deeply") from exc
        except UndefinedError as exc:
            message, field = undefined_message(exc, item)
            raise TemplateError(message, field=field, where=message.partition(": ")[0]) from exc
        except SecurityError as exc:
            raise TemplateError(f"{where} tried something unsafe: {exc}") from exc
        except TemplateNotFound as exc:
            raise TemplateError(f"{where} refers to a missing template {exc.name!r}") from exc
        except JinjaTemplateError as exc:
            raise TemplateError(f"{where}: {exc.message or exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise TemplateError(f"{where} failed: {exc}") from exc


_MISSING = re.compile(r"has no attribute '(?P<name>[^']+)'|'(?P<plain>[^']+)' is undefined")


def undefined_message(exc: UndefinedError, item: TemplateFile) -> tuple[str, str | None]:
    """``template email/review.html.j2:3: profile.first_name is missing for this customer`` with the
    ``| default(...)`` hint: the file and line come from the traceback Jinja rewrote onto the
    template, the full name from that line's text.  Returned with that name (None when unknown)."""
    line = 0
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == str(item.path):
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    where = f"template {item.channel}/{item.relative}" + (f":{line}" if line else "")
    found = _MISSING.search(exc.message or "")
    if found is None:
        return f"{where}: {exc.message}", None
    name = found.group("name") or found.group("plain")
    text = ""
    if line:
        try:
            text = item.path.read_text(encoding="utf-8").splitlines()[line - 1]
        except (OSError, IndexError, UnicodeDecodeError):
            text = ""
    dotted = re.search(rf"([A-Za-z_][\w.]*\.{re.escape(name)}|[A-Za-z_][\w.]*\[['\"]{re.escape(name)}['\"]\])", text)
    shown = dotted.group(1) if dotted else name
    return (
        f"{where}: {shown} is missing for this customer ({exc.message}) "
        f"(hint: where it may be absent, write {{{{ {shown} | default('') }}}} or wrap it in "
        f"{{% if {shown} is defined %}}…{{% endif %}})"
    ), shown


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _data(text: str | None, template: str) -> dict[str, str]:
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"push template {template!r}: the data part is not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise TemplateError(f"push template {template!r}: the data part must be a JSON object")
    result: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, dict | list):
            raise TemplateError(
                f"push template {template!r}: data value {key!r} must be text, not {type(item).__name__}"
            )
        result[str(key)] = item if isinstance(item, str) else json.dumps(item)
    return result


def build_context(
    profile: Mapping[str, Any],
    *,
    event: Mapping[str, Any] | None = None,
    trigger: Mapping[str, Any] | None = None,
    journey_id: str = "",
    journey_name: str = "",
    step_id: str = "",
    now: datetime,
    unsubscribe_url: str = "",
    voucher: Mapping[str, Any] | None = None,
    saved: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The mapping templates see: ``profile`` is ``Profile.context()``, ``event`` the current event,
    ``voucher`` the code handed to this send when its step names a pool, ``saved`` what earlier
    ``action`` steps of the run kept (``step.<save_as>``)."""
    extra = {} if voucher is None else {"voucher": dict(voucher)}
    return {
        **extra,
        "profile": dict(profile),
        "event": dict(event or trigger or {}),
        "trigger": dict(trigger or {}),
        "journey": {"id": journey_id, "name": journey_name},
        "step": {**(saved or {}), "id": step_id},
        "now": now,
        "unsubscribe_url": unsubscribe_url,
    }
