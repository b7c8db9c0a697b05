"""Rendering: the sandbox, locale fallback, parts per channel, SMS segments, and every shipped template.

Templates are untrusted input, so escape attempts must fail at render time too (not only at
validation), and a customer never gets a message mixing two languages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import TemplateError
from orchestrator.language.catalogue import load_catalogue
from orchestrator.language.journey import SendStep
from orchestrator.language.loader import load_journeys
from orchestrator.language.preview import sample_saved
from orchestrator.language.profile import Profile
from orchestrator.language.render import Renderer, build_context, sms_segments, template_files
from orchestrator.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def make(folder: Path, files: dict[str, str]) -> Renderer:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Renderer(folder, default_locale="en")


def context(**profile: Any) -> dict[str, Any]:
    return build_context(
        {"id": "c1", **profile}, trigger={"total": 42.5}, journey_id="j", journey_name="J", step_id="s", now=NOW
    )


EMAIL = {
    "email/hi.subject.j2": "Hello\n  {{ profile.first_name }}\n",
    "email/hi.html.j2": "<p>Hi {{ profile.first_name }}</p>\n",
    "email/hi.txt.j2": "Hi {{ profile.first_name }}\n",
    "email/hi.nl.subject.j2": "Hallo {{ profile.first_name }}\n",
    "email/hi.nl.html.j2": "<p>Hoi {{ profile.first_name }}</p>\n",
    "email/hi.nl.txt.j2": "Hoi {{ profile.first_name }}\n",
    "email/half.subject.j2": "Hello\n",
    "email/half.html.j2": "<p>Hello</p>\n",
    "email/half.txt.j2": "Hello\n",
    "email/half.nl.subject.j2": "Hallo\n",
}


def test_email_parts_and_html_only_autoescape(tmp_path: Path) -> None:
    """Subject on one line, HTML escaped, plain text not: ``&`` stays ``&`` in the text part."""
    renderer = make(tmp_path, EMAIL)
    content = renderer.render("email", "hi", "en", context(first_name="Tom & <Jerry>"))
    assert content.subject == "Hello Tom & <Jerry>"
    assert content.html == "<p>Hi Tom &amp; &lt;Jerry&gt;</p>"
    assert content.text == content.body == "Hi Tom & <Jerry>"
    assert content.locale == "en"


@pytest.mark.parametrize(
    ("asked", "used"), [("nl", "nl"), ("nl-BE", "nl"), ("nl_NL", "nl"), ("de", "en"), (None, "en")]
)
def test_locale_falls_back_to_language_then_default(tmp_path: Path, asked: str | None, used: str) -> None:
    """``nl-BE`` uses the Dutch files; an unknown locale the default ones."""
    content = make(tmp_path, EMAIL).render("email", "hi", asked, context(first_name="Anna"))
    assert content.locale == used
    assert content.body == ("Hoi Anna" if used == "nl" else "Hi Anna")


def test_an_incomplete_locale_is_not_mixed_with_the_default(tmp_path: Path) -> None:
    """A Dutch subject without a Dutch body: the whole message is the default language."""
    content = make(tmp_path, EMAIL).render("email", "half", "nl", context())
    assert (content.locale, content.subject) == ("en", "Hello")


def test_missing_template_is_a_template_error(tmp_path: Path) -> None:
    renderer = make(tmp_path, EMAIL)
    with pytest.raises(TemplateError, match="no template 'nope' for channel 'email'"):
        renderer.render("email", "nope", "en", context())
    with pytest.raises(TemplateError, match="needs the parts subject, html, txt"):
        make(tmp_path, {"email/only.subject.j2": "x"}).render("email", "only", "en", context())


def test_push_data_is_json_of_strings_and_language_neutral(tmp_path: Path) -> None:
    """Title, body and a data part shared by every locale; numbers become strings."""
    renderer = make(
        tmp_path,
        {
            "push/p.title.j2": "Title",
            "push/p.body.j2": "Body {{ profile.id }}",
            "push/p.nl.title.j2": "Titel",
            "push/p.nl.body.j2": "Tekst",
            "push/p.data.j2": '{"deep_link": {{ ("app://x/" ~ profile.id) | tojson }}, "n": 3}',
        },
    )
    content = renderer.render("push", "p", "nl", context())
    assert (content.title, content.body, content.locale) == ("Titel", "Tekst", "nl")
    assert content.data == {"deep_link": "app://x/c1", "n": "3"}
    assert parts_error(tmp_path, '["not", "an", "object"]') == "must be a JSON object"
    assert parts_error(tmp_path, '{"a": {"nested": 1}}') == "must be text"
    assert parts_error(tmp_path, "{oops") == "is not JSON"


def parts_error(folder: Path, data: str) -> str:
    renderer = make(folder, {"push/q.title.j2": "T", "push/q.body.j2": "B", "push/q.data.j2": data})
    with pytest.raises(TemplateError) as caught:
        renderer.render("push", "q", "en", context())
    for words in ("must be a JSON object", "must be text", "is not JSON"):
        if words in str(caught.value):
            return words
    return str(caught.value)


def test_parts_for_each_channel() -> None:
    renderer = Renderer(ROOT / "templates")
    assert renderer.parts_for("email") == ["subject", "html", "txt"]
    assert renderer.parts_for("sms") == ["txt"]
    assert renderer.parts_for("push") == ["title", "body"]
    assert renderer.parts_for("whatsapp") == ["txt"]


def test_plugin_filters_and_globals_are_available(tmp_path: Path) -> None:
    """Channel plugins add filters and globals through the constructor."""
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "x.txt.j2").write_text("{{ profile.id | shout }} {{ brand }}")
    renderer = Renderer(tmp_path, filters={"shout": str.upper}, globals={"brand": "Brightleaf"})
    assert renderer.render("sms", "x", None, context()).body == "C1 Brightleaf"


def test_undefined_values_fail_loudly(tmp_path: Path) -> None:
    """StrictUndefined: a missing value is a TemplateError naming the file, never an empty gap."""
    renderer = make(tmp_path, {"sms/u.txt.j2": "Hi {{ profile.first_name }}"})
    with pytest.raises(TemplateError, match=r"sms/u\.txt\.j2.*first_name"):
        renderer.render("sms", "u", "en", context())


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ profile|attr('__class__') }}",
        "{{ profile['__class__'] }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_sandbox_escapes_are_refused_at_render_time(tmp_path: Path, source: str) -> None:
    """Even a template that never went through validation cannot reach Python internals."""
    renderer = make(tmp_path, {"sms/evil.txt.j2": source})
    with pytest.raises(TemplateError, match=r"unsafe|not allowed"):
        renderer.render("sms", "evil", "en", context())


# --- SMS segments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 0)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("€" * 80, ("GSM-7", 1)),
        ("€" * 81, ("GSM-7", 2)),
        ("a" * 152 + "€", ("GSM-7", 1)),
        ("a" * 158 + "€", ("GSM-7", 1)),
        ("a" * 159 + "€", ("GSM-7", 2)),
        ("ç" * 70, ("UCS-2", 1)),
        ("ç" * 71, ("UCS-2", 2)),
        ("ç" * 134, ("UCS-2", 2)),
        ("ç" * 135, ("UCS-2", 3)),
        ("😀" * 35, ("UCS-2", 1)),
        ("😀" * 36, ("UCS-2", 2)),
        ("Ça va? Ñoño, Øre, ÄÖÜ äöü ß É à ù", ("GSM-7", 1)),
        ("Ça va? Ñandú", ("UCS-2", 1)),
    ],
)
def test_sms_segments_follow_carrier_rules(text: str, expected: tuple[str, int]) -> None:
    """GSM-7 160/153 with two-septet extension characters never split; UCS-2 70/67 in UTF-16 units."""
    assert sms_segments(text) == expected


def test_an_extension_character_is_not_split_across_parts() -> None:
    """152 septets then '€' (2 septets) would straddle a 153-septet part: it moves to the next one."""
    assert sms_segments("a" * 152 + "€" + "a" * 10) == ("GSM-7", 2)
    assert sms_segments("a" * 152 + "€" + "a" * 152) == ("GSM-7", 3)


# --- the shipped templates ------------------------------------------------------------------------

CATALOGUE = load_catalogue(ROOT / "journeys" / "catalogue.yaml")
JOURNEYS = load_journeys(ROOT / "journeys", ROOT / "templates")
SETTINGS = load_settings(ROOT / "journeys", env={})
SENDS = [
    (journey.id, step.id, channel, step.template)
    for journey in JOURNEYS.values()
    for step in journey.steps
    if isinstance(step, SendStep)
    for channel in step.channels
]
FULL = Profile(id="c-42", locale="nl", attributes=CATALOGUE.example_attributes())
BARE = Profile(id="c-43")


def trigger_for(journey_id: str) -> dict[str, Any]:
    trigger = JOURNEYS[journey_id].trigger
    return CATALOGUE.example_event(trigger.event) if hasattr(trigger, "event") else {}


@pytest.mark.parametrize("locale", ["en", "nl"])
@pytest.mark.parametrize("profile", [FULL, BARE], ids=["full-profile", "bare-profile"])
@pytest.mark.parametrize(
    ("journey_id", "step_id", "channel", "template"), SENDS, ids=[f"{s[0]}-{s[1]}-{s[2]}" for s in SENDS]
)
def test_every_shipped_template_renders_in_both_locales(
    journey_id: str, step_id: str, channel: str, template: str, profile: Profile, locale: str
) -> None:
    """Each send of each shipped journey renders in English and Dutch, even for a profile with no
    attributes; a step with a voucher pool shows its code."""
    renderer = Renderer(ROOT / "templates", default_locale="en")
    step = JOURNEYS[journey_id].step(step_id)
    pool = getattr(step, "voucher", None)
    ctx = build_context(
        profile.context(),
        trigger=trigger_for(journey_id),
        journey_id=journey_id,
        journey_name=JOURNEYS[journey_id].name,
        step_id=step_id,
        now=NOW,
        unsubscribe_url="https://example.test/u/token",
        voucher={"code": "B-0001"} if pool else None,
        saved=sample_saved(JOURNEYS[journey_id], SETTINGS.endpoints),  # what action steps keep (step.<save_as>)
    )
    content = renderer.render(channel, template, locale, ctx)
    assert content.locale == locale
    assert content.body and "None" not in content.body
    assert ("B-0001" in content.body) == bool(pool)
    if channel == "email":
        assert content.subject and content.html and "https://example.test/u/token" in content.html
        assert f'lang="{locale}"' in content.html
    if channel == "sms":
        encoding, segments = sms_segments(content.body)
        assert encoding == "GSM-7" and segments == 1, "shipped texts stay within one GSM-7 segment"
        assert "STOP" in content.body
    if channel == "push":
        assert content.title and content.data.get("deep_link", "").startswith("brightleaf://")


def test_every_shipped_template_has_a_dutch_version() -> None:
    """English is the default; every template that ships also ships in Dutch with all parts."""
    for _, _, channel, template in SENDS:
        files = template_files(ROOT / "templates", channel, template)
        locales = {item.locale for item in files}
        assert locales == {None, "nl"}, (channel, template, locales)
