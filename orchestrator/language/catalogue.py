"""The fields journeys may rely on: profile attributes and the properties of each event.

Templates and conditions are checked against this list at validation time, so
``{{ profile.frist_name }}`` is caught while the marketer is still at their desk instead of
failing for every customer at send time.  It lives in ``journeys/catalogue.yaml`` beside the
journeys, because adding a field is a marketing decision as much as a data one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.errors import ValidationFailed
from orchestrator.language.journey import EVENT_NAME, IDENTIFIER
from orchestrator.language.located import problems_from
from orchestrator.language.profile import Profile
from orchestrator.language.yamlfile import read_yaml_file

CATALOGUE_FILE = "catalogue.yaml"

FieldType = Literal["string", "number", "integer", "boolean", "date", "datetime", "list", "object", "any"]


class FieldSpec(BaseModel):
    """One field: its type, what it means, an example value, and the fields of its list items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType = "string"
    description: str = ""
    example: Any = None
    #: The field may be absent for some customers or events: ``validate`` warns where a template
    #: uses it without ``| default(...)`` or ``is defined``.
    optional: bool = False
    items: dict[Annotated[str, Field(pattern=IDENTIFIER)], FieldSpec] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``first_name: string`` is short for ``first_name: {type: string}``."""
        return {"type": value} if isinstance(value, str) else value


class EventSpec(BaseModel):
    """An event a journey may react to and the properties it carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    properties: dict[Annotated[str, Field(pattern=IDENTIFIER)], FieldSpec] = Field(default_factory=dict)


class Catalogue(BaseModel):
    """Profile attributes (beyond Loyaloop's own fields) and events with their properties."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: dict[Annotated[str, Field(pattern=IDENTIFIER)], FieldSpec] = Field(default_factory=dict)
    events: dict[Annotated[str, Field(pattern=EVENT_NAME)], EventSpec] = Field(default_factory=dict)

    def profile_fields(self) -> set[str]:
        """Every name a condition or template may use after ``profile.``."""
        return builtin_profile_fields() | set(self.profile)

    def event_fields(self, event: str) -> set[str] | None:
        """The properties of ``event``, or None when the event is not in the catalogue."""
        spec = self.events.get(event)
        return None if spec is None else set(spec.properties)

    def example_event(self, event: str) -> dict[str, Any]:
        """Example properties of an event, for previews and tests."""
        spec = self.events.get(event)
        if spec is None:
            return {}
        return {name: _example(field) for name, field in spec.properties.items()}

    def example_attributes(self) -> dict[str, Any]:
        """Example profile attributes, for previews and tests."""
        return {name: _example(field) for name, field in self.profile.items() if field.example is not None}


def _example(field: FieldSpec) -> Any:
    if field.example is not None:
        return field.example
    if field.items is not None:
        return [{name: _example(sub) for name, sub in field.items.items()}]
    return {"string": "", "number": 0.0, "integer": 0, "boolean": False, "list": [], "object": {}}.get(field.type)


def builtin_profile_fields() -> set[str]:
    """The fields :meth:`Profile.context` always provides."""
    return set(Profile(id="catalogue").context())


def load_catalogue(path: Path) -> Catalogue:
    """Read a catalogue file; every mistake in it is reported with its line, like a journey's."""

    doc = read_yaml_file(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ValidationFailed([doc.problem((), "expected a mapping with 'profile' and 'events' at the top")])
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(problems_from(exc, doc, Catalogue)) from None
