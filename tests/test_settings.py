"""Settings: the policy file beside the journeys, the environment on top, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.settings import PROJECT_DIR, load_settings


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
