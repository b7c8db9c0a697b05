"""``loyaloop validate``, ``schema`` and ``render`` as a marketer runs them.

Output is ``path:line:col: message (hint: …)`` lines plus a summary; the exit status is 0 or 1;
no traceback ever reaches the terminal.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.language.schema import journey_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "broken_journeys"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_validate_the_shipped_journeys_succeeds() -> None:
    code, out, err = run("validate", str(ROOT / "journeys"), "--templates", str(ROOT / "templates"), "--no-plugins")
    assert code == 0, out
    assert out == ""
    count = len(list((ROOT / "templates").rglob("*.j2")))
    assert f"10 journeys and {count} template files valid" in err


def test_validate_checks_templates_no_journey_uses_yet(tmp_path: Path) -> None:
    """A broken or misnamed template is reported even before a journey sends it."""
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "sms" / "unused.txt.j2").write_text("Hi {{ profile.first_name\n")
    (tmp_path / "templates" / "email" / "welcome.nl.subjct.j2").write_text("Hoi\n")
    (tmp_path / "templates" / "push" / "x.title.j2").write_text("{{ ''.__class__ }}\n")
    code, out, err = run("validate", str(ROOT / "journeys"), "--templates", str(tmp_path / "templates"), "--no-plugins")
    assert code == 1
    assert out.splitlines() == [
        f"{tmp_path}/templates/email/welcome.nl.subjct.j2:1:1: 'welcome.nl.subjct.j2' is not named "
        "<name>[.<locale>].<part>.j2 with a email part (hint: did you mean 'subject'?)",
        f"{tmp_path}/templates/push/x.title.j2:1:1: access to '__class__' is not allowed (it could escape the sandbox) "
        "(hint: use only the fields of profile, event and trigger)",
        f"{tmp_path}/templates/sms/unused.txt.j2:1:1: template syntax error: unexpected end of template, "
        "expected 'end of print statement'. (hint: close every {{ with }})",
    ]
    assert "3 problems in 3 files" in err


def test_validate_prints_every_problem_located_and_exits_1(tmp_path: Path) -> None:
    """Problems from several files, sorted, each on one line with its hint; then a summary."""
    for name in ("unknown_key_with_suggestion.yaml", "bad_duration.yaml", "catalogue.yaml"):
        shutil.copy(CORPUS / name, tmp_path / name)
    templates = tmp_path / "templates"
    for source in (CORPUS / "templates").rglob("ok.*.j2"):
        target = templates / source.relative_to(CORPUS / "templates")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    code, out, err = run("validate", str(tmp_path), "--templates", str(templates), "--no-plugins")
    assert code == 1
    lines = out.splitlines()
    assert lines == [
        f"{tmp_path / 'bad_duration.yaml'}:7:11: wait: '3 days' is not a duration "
        "(hint: write a number and a unit with no space: 90m, 12h, 2d, 1w (units: w d h m s))",
        f"{tmp_path / 'unknown_key_with_suggestion.yaml'}:6:5: missing required key 'template' in a send step "
        "(hint: add 'template: …')",
        f"{tmp_path / 'unknown_key_with_suggestion.yaml'}:8:5: unknown key 'templte' in a send step "
        "(hint: did you mean 'template'?)",
    ]
    assert "3 problems in 2 files" in err


def test_validate_single_files_and_missing_paths(tmp_path: Path) -> None:
    code, out, _ = run("validate", str(CORPUS / "tabs.yaml"), str(tmp_path / "nope.yaml"), "--no-plugins")
    assert code == 1
    assert f"{CORPUS / 'tabs.yaml'}:6:1: a tab is used for indentation" in out
    assert f"{tmp_path / 'nope.yaml'}:1:1: no such file or folder" in out


def test_validate_reports_settings_mistakes(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text("caps:\n  - {channel: sms, window: 7 days, max: 2}\nsecret_key: x\n")
    code, out, _ = run("validate", str(tmp_path), "--no-plugins")
    assert code == 1
    assert f"{tmp_path / 'settings.yaml'}:3:1: 'secret_key' comes from the environment only" in out


def test_validate_refuses_every_environment_only_setting_in_the_file(tmp_path: Path) -> None:
    """Ops' tuning (a lease, the drain slots) in settings.yaml is refused like the secrets, each at its
    line and with the variable to set instead."""
    (tmp_path / "settings.yaml").write_text("timer_lease: 5\nbatch_slots: 4\n")
    code, out, _ = run("validate", str(tmp_path), "--no-plugins")
    assert code == 1
    assert f"{tmp_path / 'settings.yaml'}:1:1: 'timer_lease' comes from the environment only" in out
    assert "set LOYALOOP_BATCH_SLOTS" in out


def test_validate_never_prints_a_traceback_for_the_whole_corpus() -> None:
    """The real console script over 57 broken files: exit 1, located lines, no Traceback."""
    script = Path(sys.executable).parent / "loyaloop"
    result = subprocess.run(
        [str(script), "validate", str(CORPUS), "--templates", str(CORPUS / "templates")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert all(line.startswith(str(CORPUS)) for line in result.stdout.splitlines())
    assert len(result.stdout.splitlines()) >= 57


def test_schema_command_prints_the_schema_and_docs_copy_is_current() -> None:
    """``loyaloop schema`` prints the same JSON as docs/journey.schema.json (regenerate it if this fails)."""
    code, out, _ = run("schema")
    assert code == 0
    assert json.loads(out)["$id"] == journey_schema()["$id"]
    assert (ROOT / "docs" / "journey.schema.json").read_text(encoding="utf-8") == schema_text()


def test_schema_describes_the_language() -> None:
    """Step kinds, aliases (``if``/``else``) and durations as strings; the computed version is absent."""
    schema = journey_schema()
    assert "version" not in schema["properties"]
    assert set(schema["required"]) == {"id", "name", "trigger", "steps"}
    definitions = schema["$defs"]
    assert "if" in definitions["BranchCase"]["properties"]
    assert "else" in definitions["BranchStep"]["properties"]
    wait = definitions["WaitStep"]["properties"]["wait"]["oneOf"][0]
    assert wait["type"] == "string" and "format" not in wait
    assert definitions["DateTrigger"]["properties"]["at"]["default"] == "09:00"


def test_every_shipped_journey_points_editors_at_the_schema() -> None:
    for path in sorted((ROOT / "journeys").glob("*.yaml")):
        if path.name in {"settings.yaml", "catalogue.yaml"}:
            continue
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../docs/journey.schema.json", path.name


def write_json(folder: Path, name: str, value: object) -> str:
    path = folder / name
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def render_args(tmp_path: Path, *extra: str) -> list[str]:
    profile = write_json(
        tmp_path, "p.json", {"id": "c1", "locale": "nl", "attributes": {"first_name": "Anna", "points": 1300}}
    )
    return [
        "render",
        *extra,
        "--profile",
        profile,
        "--journeys",
        str(ROOT / "journeys"),
        "--templates",
        str(ROOT / "templates"),
        "--now",
        "2026-03-10T09:00:00+00:00",
    ]


def test_render_an_sms_shows_encoding_and_segments(tmp_path: Path) -> None:
    code, out, _ = run(*render_args(tmp_path, "welcome", "first_order_sms"))
    assert code == 0
    assert out.splitlines()[:4] == [
        "# welcome / first_order_sms: sms template 'first_order_offer', locale nl",
        "SMS: 145 characters, GSM-7, 1 segment",
        "",
        "Brightleaf: Hoi Anna, 10% korting op je eerste bestelling met code HELLO10, 7 dagen geldig: "
        "brightleaf.example/shop Antwoord STOP om af te melden",
    ]


def test_render_an_email_with_event_and_locale(tmp_path: Path) -> None:
    event = write_json(
        tmp_path, "e.json", {"order_id": "A1", "items": [{"sku": "S1", "name": "Serum", "replenish_days": 30}]}
    )
    code, out, _ = run(*render_args(tmp_path, "replenishment", "reminder_email", "--event", event, "--locale", "en"))
    assert code == 0
    assert "Subject: Running low on Serum?" in out
    assert "--- text ---" in out and "Hi Anna," in out
    assert "--- html ---" in out and 'href="https://brightleaf.example/reorder/S1"' in out


def test_render_all_steps_walks_the_journey_with_every_message_in_order(tmp_path: Path) -> None:
    """The win-back for one customer: the 60-day wait, then each message at its moment, rendered in
    the profile's locale, and the end of the run."""
    code, out, _ = run(*render_args(tmp_path, "winback", "--all-steps"))
    assert code == 0, out
    steps = [line.split()[:3] for line in out.splitlines() if line.startswith(" ") and "│" not in line]
    assert steps == [
        ["+0m", "sixty_days", "wait"],
        ["+60d00h", "miss_you_email", "send"],
        ["+60d00h", "one_week", "wait"],
        ["+67d00h", "offer_sms", "send"],
        ["+67d00h", "two_weeks", "wait"],
        ["+81d00h", "last_email", "send"],
        ["+81d00h", "end", "completed"],
    ]
    assert "│ Subject: We missen je, Anna" in out and "SMS: " in out and "--- html ---" not in out


def test_render_all_steps_shows_the_branch_each_condition_takes(tmp_path: Path) -> None:
    code, out, _ = run(*render_args(tmp_path, "activation", "--all-steps"))
    assert code == 0, out
    assert "check_profile          branch  goes to nudge: no condition holds" in out
    assert "waits up to 3.0 days for app.opened" in out


def test_render_a_push_fallback_channel(tmp_path: Path) -> None:
    code, out, _ = run(*render_args(tmp_path, "birthday", "birthday_wishes", "--channel", "push", "--locale", "en"))
    assert code == 0
    assert "Title: Happy birthday, Anna!" in out
    assert 'Data: {"deep_link": "brightleaf://shop?code=SAMPLE-CODE"}' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "x"), "no journey 'nope'"),
        (
            ("welcome", "two_days"),
            "step 'two_days' sends nothing; its send steps: welcome_email, points_push, first_order_sms",
        ),
        (("welcome", "zzz"), "journey 'welcome' has no step 'zzz'"),
        (("welcome", "welcome_email", "--channel", "sms"), "sends on email, not 'sms'"),
        (("welcome",), "give either a STEP to render or --all-steps"),
        (("welcome", "welcome_email", "--all-steps"), "give either a STEP to render or --all-steps"),
    ],
)
def test_render_mistakes_are_one_line_errors(
    tmp_path: Path, args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong journey, step or channel: ``error: …`` and exit 1 through the real entry point."""
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exited:
        main(render_args(tmp_path, *args))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_render_refuses_a_malformed_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.cli import main

    bad = write_json(tmp_path, "bad.json", {"id": "c1", "first_name": "Anna"})
    args = render_args(tmp_path, "welcome", "welcome_email")
    args[args.index("--profile") + 1] = bad
    with pytest.raises(SystemExit):
        main(args)
    assert (
        "error: the profile file is not a valid profile: first_name: Extra inputs are not permitted"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(render_args(tmp_path, "welcome", "two_days"))
    assert "error: step 'two_days' sends nothing" in capsys.readouterr().err


def test_render_without_files_uses_catalogue_examples() -> None:
    """A quick look needs no JSON files: the catalogue's example values fill profile and event."""
    code, out, err = run(
        "render", "vip", "congratulations", "--journeys", str(ROOT / "journeys"), "--templates", str(ROOT / "templates")
    )
    assert code == 0
    assert "note: sample data from catalogue.yaml" in err
    assert "Subject: Welcome to Gold, Anna" in out


def test_validate_refuses_a_folder_without_a_catalogue_unless_told(tmp_path: Path) -> None:
    """Without catalogue.yaml, validate used to print "valid" and skip every event and field check."""
    shutil.copy(ROOT / "journeys" / "welcome.yaml", tmp_path / "welcome.yaml")
    templates = str(ROOT / "templates")
    code, out, _ = run("validate", str(tmp_path), "--templates", templates, "--no-plugins")
    assert code == 1
    assert f"{tmp_path / 'catalogue.yaml'}:1:1: there is no catalogue.yaml" in out and "--no-catalogue" in out
    code, out, err = run("validate", str(tmp_path), "--templates", templates, "--no-plugins", "--no-catalogue")
    assert code == 0, out
    assert "1 journey and" in err


def test_render_a_missing_field_names_file_line_and_the_default_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`'dict object' has no attribute 'first_name'` had no file, no line and no hint."""
    from orchestrator.cli import main

    journeys = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", journeys)
    (journeys / "vip.yaml").write_text("id: [broken\n", encoding="utf-8")  # must not block welcome's preview
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "email" / "welcome.html.j2").write_text("<p>Welcome</p>\n", encoding="utf-8")
    (templates / "email" / "welcome.txt.j2").write_text(
        "Hi,\n\nwelcome {{ profile.first_name }}!\n{{ unsubscribe_url }}\n", encoding="utf-8"
    )
    profile = write_json(tmp_path, "p.json", {"id": "c1", "attributes": {}})
    args = ["render", "welcome", "welcome_email", "--locale", "en", "--journeys", str(journeys)]
    args += ["--templates", str(templates)]
    with pytest.raises(SystemExit):
        main([*args, "--profile", profile])
    err = capsys.readouterr().err
    assert "error: template email/welcome.txt.j2:3: profile.first_name is missing" in err
    assert "{{ profile.first_name | default('') }}" in err
    full = write_json(tmp_path, "full.json", {"id": "c1", "attributes": {"first_name": "Anna"}})
    code, out, _ = run(*args, "--profile", full)
    assert code == 0 and "welcome Anna!" in out
    assert "http://127.0.0.1:8000/u/PREVIEW-TOKEN" in out  # a marketing e-mail's preview shows its link
