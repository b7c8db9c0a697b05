"""Settings: the policy file beside the journeys, the environment on top, located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.errors import ConfigurationError, ValidationFailed
from orchestrator.http.config import HttpConfig
from orchestrator.settings import ENVIRONMENT, ENVIRONMENT_ONLY, PROJECT_DIR, load_settings, shown_default


def test_shipped_folders_are_found_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no journeys/ where the command runs, the shipped journeys and templates are used."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.journeys_dir == PROJECT_DIR / "journeys"
    assert settings.templates_dir == PROJECT_DIR / "templates"
    assert settings.default_timezone == "Europe/Amsterdam"


def test_environment_overrides_the_file_and_secrets_come_only_from_it(tmp_path: Path) -> None:
    """REDIS_URL, the secret and the outbox path come from the environment; the policy from the file."""
    (tmp_path / "journeys").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "journeys" / "settings.yaml").write_text("default_locale: nl\n")
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "LOYALOOP_SECRET_KEY": "s3cret", "LOYALOOP_OUTBOX": "x.jsonl"}
    settings = load_settings(tmp_path / "journeys", env=env)
    assert settings.default_locale == "nl"
    assert settings.redis_url == "redis://127.0.0.1:1/0"
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.outbox_path == Path("x.jsonl")
    assert settings.templates_dir == tmp_path / "templates"


def test_a_bad_settings_file_is_refused_at_its_line(tmp_path: Path) -> None:
    """A wrong value in settings.yaml is a located ValidationFailed, never a bare pydantic error."""
    (tmp_path / "settings.yaml").write_text("default_locale: en\ncaps:\n  - {channel: sms, window: 3 days, max: 2}\n")
    with pytest.raises(ValidationFailed) as caught:
        load_settings(tmp_path, env={})
    (problem,) = caught.value.problems
    assert problem.path.endswith("settings.yaml")
    assert problem.line == 3
    assert "3 days" in problem.message


# --- the environment: every variable read and checked here, once ----------------------------------

TUNING = {
    "LOYALOOP_HEARTBEAT_MS": ("1500", "heartbeat_ms", 1500),
    "LOYALOOP_MAINTENANCE_CHANCE": ("200000", "maintenance_chance", 200_000),
    "LOYALOOP_METRICS": ("1", "metrics", True),
    "LOYALOOP_TIMER_LEASE": ("3", "timer_lease", 3.0),
    "LOYALOOP_SEND_LEASE": ("2.5", "send_lease", 2.5),
    "LOYALOOP_BATCH_SLOTS": ("4", "batch_slots", 4),
}


def test_the_tuning_variables_become_settings_fields(tmp_path: Path) -> None:
    """What broker.py, cli/ops.py and drain_slots.py used to parse themselves is read by load_settings."""
    env = {name: raw for name, (raw, _field, _value) in TUNING.items()}
    settings = load_settings(tmp_path, env=env)
    assert {field: getattr(settings, field) for _raw, field, _value in TUNING.values()} == {
        field: value for _raw, field, value in TUNING.values()
    }
    defaults = load_settings(tmp_path, env={})
    assert (defaults.heartbeat_ms, defaults.maintenance_chance, defaults.metrics) == (15_000, 1000, False)
    assert (defaults.timer_lease, defaults.send_lease, defaults.batch_slots) == (30.0, 60.0, 2)


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    """``LOYALOOP_BATCH_SLOTS=`` (an empty export) is the default, as for REDIS_URL before."""
    assert load_settings(tmp_path, env={"LOYALOOP_BATCH_SLOTS": "", "REDIS_URL": ""}).batch_slots == 2


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("LOYALOOP_HEARTBEAT_MS", "15s", "a whole number of milliseconds above 0"),
        ("LOYALOOP_HEARTBEAT_MS", "0", "a whole number of milliseconds above 0"),
        ("LOYALOOP_MAINTENANCE_CHANCE", "2000000", "a whole number from 0 to 1000000"),
        ("LOYALOOP_METRICS", "yes please", "1 (on) or 0 (off)"),
        ("LOYALOOP_TIMER_LEASE", "thirty", "a number of seconds above 0"),
        ("LOYALOOP_SEND_LEASE", "inf", "a number of seconds above 0"),
        ("LOYALOOP_BATCH_SLOTS", "0", "a whole number of drains, at least 1"),
        ("LOYALOOP_BATCH_SLOTS", "2.5", "a whole number of drains, at least 1"),
    ],
)
def test_a_bad_variable_is_a_configuration_error_naming_it(tmp_path: Path, name: str, raw: str, expected: str) -> None:
    """A typo is refused at start-up with the variable, its value, what it expects and the default —
    never the bare ``ValueError: invalid literal for int()`` it used to be, wherever it was read."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(tmp_path, env={name: raw})
    message = str(caught.value)
    assert f"{name}={raw!r} is not {expected}" in message
    assert f"unset {name} for the default" in message


def test_every_bad_variable_is_named_at_once(tmp_path: Path) -> None:
    """Two mistakes, one start-up: both are in the message."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(tmp_path, env={"LOYALOOP_METRICS": "2", "LOYALOOP_BATCH_SLOTS": "x"})
    assert "LOYALOOP_METRICS='2'" in str(caught.value) and "LOYALOOP_BATCH_SLOTS='x'" in str(caught.value)


def test_a_bad_variable_is_reported_even_beside_a_settings_file(tmp_path: Path) -> None:
    """With a settings.yaml present the variable is still named as a variable, not as a file line."""
    (tmp_path / "settings.yaml").write_text("default_locale: nl\n")
    with pytest.raises(ConfigurationError, match="LOYALOOP_TIMER_LEASE='-1'"):
        load_settings(tmp_path, env={"LOYALOOP_TIMER_LEASE": "-1"})


def test_the_settings_file_may_not_set_what_only_the_environment_sets(tmp_path: Path) -> None:
    """A lease or a Redis URL in settings.yaml (a committed file) is a located problem naming the variable."""
    (tmp_path / "settings.yaml").write_text("default_locale: nl\nsend_lease: 5\n")
    with pytest.raises(ValidationFailed) as caught:
        load_settings(tmp_path, env={})
    (problem,) = caught.value.problems
    assert (problem.line, problem.message) == (2, "'send_lease' comes from the environment only")
    assert "LOYALOOP_SEND_LEASE" in problem.hint
    assert set(ENVIRONMENT.values()) - {"public_url"} == ENVIRONMENT_ONLY


def test_only_the_settings_read_loyaloops_own_configuration() -> None:
    """``os.environ`` appears only where a reason holds (below); a new tuning variable read anywhere
    else — the drift this module exists to prevent — fails here."""
    reasons = {
        # The one reader of Loyaloop's configuration.
        "orchestrator/settings.py",
        # The HTTP front door's own validated loader (keys, limits, webhook secrets): only `serve` needs them.
        "orchestrator/http/config.py",
        # Which plugins to block, read before any Settings exist (authoring tools, the HTTP app).
        "orchestrator/plugins.py",
        # prometheus_client's own variable, which `serve` sets for its child processes.
        "orchestrator/http/observability.py",
        "orchestrator/cli/serve.py",
        # PROMETHEUS_MULTIPROC_DIR as above, and LOYALOOP_DEBUG, which must work when settings fail to load.
        "orchestrator/cli/__init__.py",
        # The marketer's tools' default folders, which must not need ops' environment to be valid.
        "orchestrator/cli/authoring.py",
        # The console's own users and session secret (like the HTTP front door's keys): only the
        # console reads them, and `loyaloop console` must say at once when neither secret is set.
        "orchestrator/http/console/startup.py",
        "orchestrator/cli/console.py",
        # The demo points the endpoints' own variables (which the webhook channel reads, as ops
        # set them) at its loopback ledger for the run, and puts them back: a writer, not a reader.
        "orchestrator/cli/demo_ledger.py",
    }
    readers = {
        str(path.relative_to(PROJECT_DIR))
        for path in (PROJECT_DIR / "orchestrator").rglob("*.py")
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text(encoding="utf-8"))
    }
    assert readers - reasons == set()
    assert ENVIRONMENT.keys() >= {name for name in TUNING}


# --- the docs' tables of variables say the defaults the code has ----------------------------------

DOCS = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
#: The HTTP front door's variables (orchestrator/http/config.py), checked against HttpConfig's defaults.
HTTP_VARIABLES = {
    "LOYALOOP_API_KEYS": "api_keys",
    "LOYALOOP_API_RATE": "rate",
    "LOYALOOP_API_BURST": "burst",
    "LOYALOOP_API_MAX_BODY": "max_body",
    "LOYALOOP_API_MAX_BATCH_BODY": "max_batch_body",
    "LOYALOOP_API_MAX_BATCH": "max_batch_items",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "sendgrid_public_key",
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "LOYALOOP_WEBHOOK_TOLERANCE": "webhook_tolerance",
    "LOYALOOP_SENDGRID_MAX_BODY": "sendgrid_max_body",
    "LOYALOOP_TWILIO_MAX_BODY": "twilio_max_body",
    "LOYALOOP_SMS_HELP_TEXT": "sms_help_text",
    "LOYALOOP_HTTP_HEADER_TIMEOUT": "header_timeout",
    "LOYALOOP_HTTP_BODY_TIMEOUT": "body_timeout",
    "LOYALOOP_HTTP_MAX_CONNECTIONS": "max_connections",
    "LOYALOOP_REDIS_TIMEOUT": "redis_timeout",
    "LOYALOOP_AUTH_FAILURES": "auth_failures",
}
#: Variables of the libraries underneath, documented with their own defaults.
LIBRARY_VARIABLES = {"FORWARDED_ALLOW_IPS": "127.0.0.1"}  # uvicorn's proxy_headers trust list


def documented_defaults(text: str) -> list[tuple[str, str]]:
    """(variable, default as written) for every row of every ``| variable | default | … |`` table."""
    rows: list[tuple[str, str]] = []
    in_table = False
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and cells[0].lower() == "variable" and cells[1].lower() == "default":
            in_table = True
        elif not cells:
            in_table = False
        elif in_table and not set(cells[0]) <= set("-: "):
            rows.append((cells[0].strip("`"), _normalised(cells[1])))
    return rows


def _normalised(cell: str) -> str:
    """``— (required)``, ``unset (…)`` and ``empty (…)`` mean no value; backticks and quotes go."""
    if cell.startswith(("—", "unset", "empty")):
        return "—"
    return cell.replace("`", "").strip('"')


def _http_default(attribute: str) -> str:
    value = getattr(HttpConfig(), attribute)
    if value is None or value == ():
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def code_default(name: str) -> str | None:
    """The default the code has for a variable, as the tables write it (None: no such variable)."""
    if name in ENVIRONMENT:
        return shown_default(ENVIRONMENT[name])
    if name in HTTP_VARIABLES:
        return _http_default(HTTP_VARIABLES[name])
    return LIBRARY_VARIABLES.get(name)


def test_every_table_of_variables_in_the_docs_gives_the_codes_defaults() -> None:
    """docs/runtime.md once said LOYALOOP_HEARTBEAT_MS defaults to 60000 while the code used 15000:
    every documented default is now compared with Settings' (or, for the HTTP front door's own
    variables, HttpConfig's), and a documented variable the code does not read fails too."""
    rows = [(doc.name, name, default) for doc in DOCS for name, default in documented_defaults(doc.read_text("utf-8"))]
    assert {name for _doc, name, _default in rows} >= set(ENVIRONMENT), "a Settings variable is in no table"
    wrong = [(doc, name, default, code_default(name)) for doc, name, default in rows if default != code_default(name)]
    assert wrong == []


def test_the_table_check_catches_a_drifted_default() -> None:
    """The old runtime.md row is flagged, the fixed one is not: the check above can fail."""
    table = "| variable | default | what |\n| --- | --- | --- |\n| `LOYALOOP_HEARTBEAT_MS` | {} | x |\n"
    ((name, old),) = documented_defaults(table.format("60000"))
    assert old != code_default(name)
    ((name, new),) = documented_defaults(table.format("15000"))
    assert new == code_default(name) == "15000"
