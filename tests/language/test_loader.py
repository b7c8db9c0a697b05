"""Loading journey files: YAML positions, every problem at once, versions, folders, and fuzzing.

The loader's promise is that a marketer's file yields either a Journey or a ValidationFailed
whose problems point at lines and columns — never a traceback, whatever bytes the file holds.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ValidationFailed
from orchestrator.language.catalogue import load_catalogue
from orchestrator.language.loader import journey_files, load_journey_file, load_journeys, version_of
from orchestrator.language.yamlfile import load_settings_file, parse_yaml
from orchestrator.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = ROOT / "journeys"
TEMPLATES = ROOT / "templates"
CATALOGUE = load_catalogue(JOURNEYS / "catalogue.yaml")

VALID = textwrap.dedent(
    """\
    id: sample
    name: Sample
    trigger:
      event: customer.signed_up
    steps:
      - id: hello
        send: email
        template: welcome
    """
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> object:
    return load_journey_file(path, templates_dir=TEMPLATES, catalogue=CATALOGUE)


def test_a_valid_file_loads_with_a_content_version(tmp_path: Path) -> None:
    """The version is a short hash of the bytes: an edit gives a new version, a copy the same."""
    first = load(write(tmp_path, "a.yaml", VALID))
    again = load(write(tmp_path, "b.yaml", VALID))
    edited = load(write(tmp_path, "c.yaml", VALID.replace("Sample", "Sample two")))
    assert first.id == "sample" and len(first.version) == 12
    assert first.version == again.version == version_of(VALID.encode())
    assert edited.version != first.version


def test_positions_of_keys_and_values_are_one_based() -> None:
    """Every key and value keeps its line and column, in block and flow style."""
    doc = parse_yaml("a: 1\nb:\n  - {c: x, d: [1, 2]}\n", "f.yaml")
    assert doc.key_where(("a",)) == (1, 1)
    assert doc.where(("a",)) == (1, 4)
    assert doc.where(("b", 0)) == (3, 5)
    assert doc.key_where(("b", 0, "d")) == (3, 12)
    assert doc.where(("b", 0, "d", 1)) == (3, 19)
    assert doc.where(("b", 0, "missing", 3)) == (3, 5), "falls back to the nearest ancestor"


def test_every_problem_of_a_file_is_reported_not_only_the_first(tmp_path: Path) -> None:
    """Three independent mistakes → three problems, in line order."""
    text = VALID.replace("template: welcome", "templte: welcome") + "priority: high\nholdout: 200\n"
    with pytest.raises(ValidationFailed) as caught:
        load(write(tmp_path, "many.yaml", text))
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)
    texts = "\n".join(map(str, caught.value.problems))
    assert "did you mean 'template'?" in texts
    assert "priority: input should be a valid integer" in texts and "'high'" in texts
    assert "holdout: input should be less than or equal to 100, got 200" in texts


def test_all_tabs_are_reported(tmp_path: Path) -> None:
    """Each line indented with a tab is its own problem, at the tab's column."""
    with pytest.raises(ValidationFailed) as caught:
        load(write(tmp_path, "tabs.yaml", "id: x\nsteps:\n\t- id: a\n  \t  send: email\n"))
    assert [(p.line, p.column) for p in caught.value.problems] == [(3, 1), (4, 3)]


def test_nested_duplicate_keys_are_located(tmp_path: Path) -> None:
    """A duplicate deep in a step is found at its own line."""
    text = VALID + "    template: other\n"
    with pytest.raises(ValidationFailed) as caught:
        load(write(tmp_path, "dup.yaml", text))
    [problem] = caught.value.problems
    assert problem.line == 9 and 'duplicate key "template"' in problem.message


def test_a_non_utf8_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.replace("Sample", "Caf\xe9").encode("latin-1"))
    with pytest.raises(ValidationFailed, match="not UTF-8"):
        load(path)


def test_folder_loading_skips_settings_and_catalogue_and_reads_yml(tmp_path: Path) -> None:
    """settings.yaml and catalogue.yaml are not journeys; ``.yml`` files are."""
    write(tmp_path, "settings.yaml", "default_timezone: Europe/Amsterdam\n")
    write(tmp_path, "catalogue.yaml", "profile: {first_name: string, points: integer}\n")
    write(tmp_path, "one.yml", VALID)
    write(tmp_path, "notes.txt", "not a journey")
    assert [p.name for p in journey_files(tmp_path)] == ["one.yml"]
    assert list(load_journeys(tmp_path, TEMPLATES)) == ["sample"]


def test_problems_of_all_files_are_collected(tmp_path: Path) -> None:
    """A folder with two broken files reports both (and a broken catalogue too)."""
    write(tmp_path, "a.yaml", VALID.replace("send: email", "send: fax"))
    write(tmp_path, "b.yaml", VALID.replace("id: sample", "id: other").replace("event: customer", "event: Customer"))
    write(tmp_path, "catalogue.yaml", "profile:\n  first_name: strin\n")
    with pytest.raises(ValidationFailed) as caught:
        load_journeys(tmp_path, TEMPLATES)
    paths = {Path(p.path).name for p in caught.value.problems}
    assert paths == {"a.yaml", "b.yaml", "catalogue.yaml"}


def test_plugin_channels_are_accepted_when_known(tmp_path: Path) -> None:
    """The runtime passes the registry's channel names; a plugin channel then validates."""
    templates = tmp_path / "templates"
    (templates / "whatsapp").mkdir(parents=True)
    (templates / "whatsapp" / "hi.txt.j2").write_text("Hi {{ profile.first_name | default('there') }}\n")
    folder = tmp_path / "journeys"
    folder.mkdir()
    write(folder, "a.yaml", VALID.replace("send: email", "send: whatsapp").replace("welcome", "hi"))
    with pytest.raises(ValidationFailed, match="unknown channel 'whatsapp'"):
        load_journeys(folder, templates)
    assert list(load_journeys(folder, templates, channels={"whatsapp", "email"})) == ["sample"]


def test_plugin_filters_are_known_to_validation(tmp_path: Path) -> None:
    """A template using a plugin's filter validates when the filter is passed in."""
    templates = tmp_path / "templates"
    (templates / "sms").mkdir(parents=True)
    (templates / "sms" / "hi.txt.j2").write_text("{{ profile.id | shout }}\n")
    folder = tmp_path / "journeys"
    folder.mkdir()
    write(folder, "a.yaml", VALID.replace("send: email", "send: sms").replace("welcome", "hi"))
    with pytest.raises(ValidationFailed, match="No filter named 'shout'"):
        load_journeys(folder, templates)
    assert load_journeys(folder, templates, filters={"shout": str.upper})


def test_settings_file_reads_and_locates_yaml_problems(tmp_path: Path) -> None:
    """The shipped policy loads with load_settings; a broken settings file names its line."""
    shipped = load_settings(JOURNEYS)
    assert shipped.default_timezone == "Europe/Amsterdam" and shipped.locales == ["en", "nl"]
    assert {rule.channel for rule in shipped.caps} >= {"any", "email", "sms", "push"}
    assert set(shipped.quiet_hours) == {"sms", "push"}
    path = write(tmp_path, "settings.yaml", "caps:\n  - {channel: sms\n")
    with pytest.raises(ValidationFailed) as caught:
        load_settings_file(path)
    assert caught.value.problems[0].path == str(path) and caught.value.problems[0].line >= 2
    assert load_settings_file(write(tmp_path, "empty.yaml", "# nothing\n")) == {}


# --- fuzzing --------------------------------------------------------------------------------------

SHIPPED_TEXTS = [path.read_text(encoding="utf-8") for path in journey_files(JOURNEYS)]
KEYS = [
    "id", "name", "trigger", "event", "schedule", "date", "if", "else", "steps", "send", "template", "wait",
    "until", "timeout", "on_event", "branch", "goto", "split", "percent", "update", "set", "exit", "goals",
    "re_entry", "quiet_hours", "fallback", "to", "at", "before", "weekdays", "holdout", "audience",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(["2d", "3 days", "09:00", "25:00", "email", "sms", "fax", "welcome", "order.placed", "x"]),
    st.sampled_from(["{{ ''.__class__ }}", "profile.orders_count == 0", "event.total >", "mon", "0 9 * * *"]),
    st.integers(-5, 200),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def only_clean_failures(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        load(path)
    except ValidationFailed as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1 and problem.message


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(tree=TREES)
def test_fuzz_random_structures(fuzz_dir: Path, tree: object) -> None:
    """Any JSON-shaped data (JSON is YAML) yields a Journey or located problems, nothing else."""
    only_clean_failures(fuzz_dir / "tree.yaml", json.dumps(tree).encode())


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list(":-[]{}!&*#|>'\"\t\n ,?%@`abc019")), max_size=80))
def test_fuzz_yaml_punctuation(fuzz_dir: Path, text: str) -> None:
    """Random YAML punctuation: syntax errors come back as located problems."""
    only_clean_failures(fuzz_dir / "punct.yaml", text.encode())


@FUZZ
@given(
    source=st.sampled_from(SHIPPED_TEXTS),
    cuts=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 40), st.text(max_size=8)), min_size=1, max_size=4),
)
def test_fuzz_mutated_shipped_journeys(fuzz_dir: Path, source: str, cuts: list[tuple[int, int, str]]) -> None:
    """Shipped journeys with random slices deleted and text inserted never crash the loader."""
    text = source
    for start, length, insert in cuts:
        start %= max(len(text), 1)
        text = text[:start] + insert + text[start + length :]
    only_clean_failures(fuzz_dir / "mutated.yaml", text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(content=st.binary(max_size=200))
def test_fuzz_random_bytes(fuzz_dir: Path, content: bytes) -> None:
    """Even binary garbage is a clean validation error."""
    only_clean_failures(fuzz_dir / "bytes.yaml", content)


IDS = st.sampled_from(["a", "b", "c", "d", "e", "missing"])
CONDITIONS = st.sampled_from(
    ["profile.orders_count == 0", "event.total > 5", "profile.frist_name", "x ==", "''.__class__", "now > now"]
)
STEPS = st.one_of(
    st.fixed_dictionaries(
        {
            "send": st.sampled_from(["email", "sms", "push", "fax"]),
            "template": st.sampled_from(["welcome", "nope", "winback_offer"]),
        },
        optional={"next": IDS, "fallback": st.lists(st.sampled_from(["email", "push"]), max_size=2)},
    ),
    st.fixed_dictionaries(
        {"wait": st.sampled_from(["1d", "3 days", {"until": "09:00"}, {"at": "now + days(1)"}])}, optional={"next": IDS}
    ),
    st.fixed_dictionaries(
        {
            "wait": st.fixed_dictionaries(
                {"event": st.just("app.opened"), "timeout": st.just("1d")},
                optional={"on_event": IDS, "on_timeout": IDS, "if": CONDITIONS},
            )
        }
    ),
    st.fixed_dictionaries(
        {"branch": st.lists(st.fixed_dictionaries({"if": CONDITIONS, "goto": IDS}), min_size=1, max_size=3)},
        optional={"else": IDS},
    ),
    st.fixed_dictionaries(
        {
            "split": st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["x", "y"]), "percent": st.sampled_from([25, 50, 75]), "goto": IDS}
                ),
                min_size=2,
                max_size=3,
            )
        }
    ),
    st.fixed_dictionaries(
        {"update": st.fixed_dictionaries({"increment": st.just({"points": 1})}, optional={"to": CONDITIONS})},
        optional={"next": IDS},
    ),
    st.fixed_dictionaries({"exit": st.just(True)}),
)


@FUZZ
@given(steps=st.lists(st.tuples(IDS, STEPS), min_size=1, max_size=7))
def test_fuzz_step_graphs(fuzz_dir: Path, steps: list[tuple[str, dict[str, object]]]) -> None:
    """Well-shaped journeys with random jumps, loops and conditions reach the graph checks and never crash them."""
    tree = {
        "id": "fuzz",
        "name": "Fuzz",
        "trigger": {"event": "order.placed"},
        "steps": [{"id": step_id, **body} for step_id, body in steps],
    }
    only_clean_failures(fuzz_dir / "graph.yaml", json.dumps(tree).encode())
