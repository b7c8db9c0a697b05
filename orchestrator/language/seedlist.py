"""The seed list: the team's own addresses that ``loyaloop send-test`` may send to, and no other.

A test send goes through the real channels to real inboxes, so who may receive one is written
down in a file the team reviews, checked as strictly as any door checks a contact point: e-mail
addresses by ``email-validator``, phone numbers in E.164 exactly as written (a number the file
spells another way is refused with its E.164 form as the hint, so the file is the one spelling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, Problem, ValidationFailed
from orchestrator.language.inputs import check_email, check_phone, check_push_token
from orchestrator.language.yamlfile import YamlDocument, read_yaml_file

FIELDS = ("name", "email", "phone", "push_token", "locale", "attributes")
CONTACTS = ("email", "phone", "push_token")


@dataclass(frozen=True)
class Seed:
    """One person on the team: the addresses they receive test sends at."""

    name: str
    email: str | None = None
    phone: str | None = None
    push_token: str | None = None
    locale: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SeedList:
    seeds: tuple[Seed, ...]

    def addresses(self) -> frozenset[str]:
        """Every address on the list: a test send to anything else is refused."""
        return frozenset(a for seed in self.seeds for a in (seed.email, seed.phone, seed.push_token) if a)


def read_seed_list(path: Path) -> SeedList:
    """``seeds: [{name, email?, phone?, push_token?, locale?, attributes?}, …]``; every problem at once,
    each with ``file:line:col``."""
    doc = read_yaml_file(path)
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("seeds"), list) or not data["seeds"]:
        raise ValidationFailed([doc.problem((), "a seed list needs 'seeds:', a list of people", _EXAMPLE)])
    problems: list[Problem] = []
    seeds: list[Seed] = []
    names: set[str] = set()
    for index, entry in enumerate(data["seeds"]):
        seed = _seed(doc, index, entry, problems)
        if seed is None:
            continue
        if seed.name in names:
            problems.append(
                doc.problem(("seeds", index, "name"), f"seed {seed.name!r} is listed twice", "one entry each")
            )
        names.add(seed.name)
        seeds.append(seed)
    if problems:
        raise ValidationFailed(problems)
    return SeedList(tuple(seeds))


_EXAMPLE = "e.g. seeds: [{name: ana, email: ana@shop.example, phone: '+31612345678'}]"


def _seed(doc: YamlDocument, index: int, entry: Any, problems: list[Problem]) -> Seed | None:
    here = ("seeds", index)
    if not isinstance(entry, dict):
        problems.append(doc.problem(here, "a seed is a mapping of name and addresses", _EXAMPLE))
        return None
    for key in entry:
        if key not in FIELDS:
            problems.append(
                doc.problem((*here, key), f"unknown key {key!r}", f"keys: {', '.join(FIELDS)}", at_key=True)
            )
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(doc.problem(here, "a seed needs a 'name'", "who this is, e.g. name: ana"))
        return None
    values: dict[str, str | None] = {}
    for contact, check in (("email", check_email), ("phone", check_phone), ("push_token", check_push_token)):
        raw = entry.get(contact)
        if raw is None:
            values[contact] = None
            continue
        try:
            checked = check(raw)
        except InputError as exc:
            problems.append(doc.problem((*here, contact), str(exc)))
            continue
        if contact == "phone" and checked != raw:
            problems.append(doc.problem((*here, contact), "phone is not written in E.164", f"write it as {checked}"))
            continue
        values[contact] = checked
    if not any(entry.get(contact) for contact in CONTACTS):
        problems.append(doc.problem(here, f"seed {name!r} has no address", "give an email, phone or push_token"))
    attributes = entry.get("attributes") or {}
    if not isinstance(attributes, dict):
        problems.append(doc.problem((*here, "attributes"), "attributes must be a mapping of profile fields"))
        attributes = {}
    locale = entry.get("locale")
    return Seed(
        name=name.strip(),
        email=values.get("email"),
        phone=values.get("phone"),
        push_token=values.get("push_token"),
        locale=str(locale) if locale else None,
        attributes=dict(attributes),
    )
