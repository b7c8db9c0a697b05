"""Every file in tests/fixtures/broken_journeys is refused with exactly the problems it declares.

Each broken journey ends with ``# expect: [template-path] LINE:COL message`` comments; the test
checks that the loader reports one problem per expectation, in that file, at that line and
column, whose text (message and hint) contains the expected words — and nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.errors import Problem, ValidationFailed
from orchestrator.language.catalogue import load_catalogue
from orchestrator.language.loader import load_journey_file, load_journeys

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "broken_journeys"
TEMPLATES = CORPUS / "templates"
EXPECT = re.compile(r"^# expect: (?:(?P<path>\S+\.j2) )?(?P<line>\d+):(?P<column>\d+) (?P<text>.+)$")
FILES = sorted(p for p in CORPUS.glob("*.yaml") if p.name != "catalogue.yaml")


def expectations(path: Path) -> list[tuple[str, int, int, str]]:
    found = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.match(raw)
        if match:
            where = str(CORPUS / match["path"]) if match["path"] else str(path)
            found.append((where, int(match["line"]), int(match["column"]), match["text"]))
    return found


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ValidationFailed) as caught:
        load_journey_file(path, templates_dir=TEMPLATES, catalogue=load_catalogue(CORPUS / "catalogue.yaml"))
    return caught.value.problems


def test_the_corpus_is_big_enough() -> None:
    """The issue asks for at least 25 broken journeys; each declares what it expects."""
    assert len(FILES) >= 25
    assert all(expectations(path) for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_journey_is_refused_with_located_problems(path: Path) -> None:
    """The reported problems are exactly the declared ones: same file, line, column and words."""
    problems = problems_of(path)
    expected = expectations(path)
    unmatched = list(problems)
    for where, line, column, text in expected:
        match = next(
            (p for p in unmatched if (p.path, p.line, p.column) == (where, line, column) and text in str(p)), None
        )
        assert match is not None, f"expected {where}:{line}:{column}: {text!r}; got:\n" + "\n".join(map(str, problems))
        unmatched.remove(match)
    assert not unmatched, "unexpected problems:\n" + "\n".join(map(str, unmatched))


def test_duplicate_journey_ids_across_files_are_refused() -> None:
    """Two files with one id: the second is reported, naming where the first is."""
    folder = CORPUS / "dup_ids"
    with pytest.raises(ValidationFailed) as caught:
        load_journeys(folder, TEMPLATES)
    [problem] = caught.value.problems
    assert problem.path == str(folder / "two.yaml")
    assert (problem.line, problem.column) == (1, 5)
    assert f"duplicate journey id 'same': {folder / 'one.yaml'}:1 uses it too" in problem.message
