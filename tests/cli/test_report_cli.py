"""``loyaloop report``: the command's four formats from figures, and bad input as one line.

The command reads ``Store.version_figures``; here the source is replaced by one that hands out
hand-made figures (``open_source`` is the only seam), so every rendering path runs as a user runs it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator import cli
from orchestrator.cli import report as report_cli
from orchestrator.errors import InputError
from orchestrator.measure.figures import VersionFigures
from orchestrator.store import Store
from orchestrator.workers.embedded import in_process_redis
from tests.measure.world import world


class Source:
    """Figures as the store hands them out, remembering what was asked."""

    def __init__(self, figures: list[VersionFigures]) -> None:
        self.figures = figures
        self.asked: list[str | None] = []

    def version_figures(self, journey_id: str | None = None) -> list[VersionFigures]:
        self.asked.append(journey_id)
        return [f for f in self.figures if journey_id is None or f.journey_id == journey_id]


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Source:
    figures = Source(world())
    monkeypatch.setattr(report_cli, "open_source", lambda: figures)
    return figures


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        cli.main(["report", *args])
    except SystemExit as stopped:
        code = int(stopped.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_table_is_the_default(source: Source, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([], capsys)
    assert code == 0
    assert "verdict: adds 4.0 pp conversion" in out
    assert "Programme: adds" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_one_journey_is_read_alone(source: Source, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["winback", "--format", "json"], capsys)
    assert code == 0
    assert source.asked == ["winback"]
    data = json.loads(out)
    assert [v["journey_id"] for v in data["versions"]] == ["winback"]
    assert data["versions"][0]["verdict"] == "not enough data yet: 6 conversions in the holdout, need 10"


def test_since_and_until_reach_the_report(source: Source, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["welcome", "--since", "2026-11-02", "--until", "2026-11-02", "--format", "csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    entrants = {r["subject"]: r["value"] for r in rows if r["section"] == "arm" and r["metric"] == "entrants"}
    assert entrants == {"treated": "4000", "holdout": "400"}


def test_html_goes_to_a_file(
    source: Source, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.html"
    code, out, err = _run(["--format", "html", "--out", str(target)], capsys)
    assert code == 0 and out == ""
    assert f"wrote {target}" in err
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    monkeypatch.chdir(tmp_path)
    code, _, _ = _run(["welcome", "--format", "html"], capsys)
    assert code == 0 and (tmp_path / "loyaloop-report.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: unknown journey 'nope'; journeys with figures: receipt, welcome, winback"),
        (["welcome", "nope"], "error: unknown journey 'nope'; journeys with figures: receipt, welcome, winback"),
        (
            ["--since", "2026-11-05", "--until", "2026-11-01"],
            "error: --since 2026-11-05 is after --until 2026-11-01; swap them",
        ),
        (["--since", "yesterday"], "error: --since 'yesterday' is not a date; expected YYYY-MM-DD, e.g. 2026-11-01"),
        (["--until", "2026-02-30"], "error: --until '2026-02-30' is not a date; expected YYYY-MM-DD, e.g. 2026-11-01"),
    ],
)
def test_bad_input_is_one_line(
    source: Source, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run(args, capsys)
    assert code == 1
    assert out == ""
    assert err.strip() == message
    assert "Traceback" not in err


def test_dates_are_checked_before_the_store_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable() -> None:
        raise AssertionError("the store was opened for input that was already wrong")

    monkeypatch.setattr(report_cli, "open_source", unreachable)
    result = CliRunner().invoke(cli.cli, ["report", "--since", "2026-1-1"])
    assert isinstance(result.exception, InputError)


def test_without_redis_url_the_error_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    code, _, err = _run([], capsys)
    assert code == 1
    assert err.startswith("error: REDIS_URL is not set;") and len(err.strip().splitlines()) == 1


def test_no_figures_yet(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(report_cli, "open_source", lambda: Source([]))
    code, out, _ = _run([], capsys)
    assert code == 0 and "no journey versions with recorded figures" in out
    code, _, err = _run(["welcome"], capsys)
    assert code == 1 and err.strip() == "error: unknown journey 'welcome'; journeys with figures: none recorded yet"


def test_the_embedded_store_is_read_the_same_way() -> None:
    """The report reads through ``Store`` on any client, the in-process one of the embedded mode
    included (runs once ``Store.version_figures`` is present)."""
    if not hasattr(Store, "version_figures"):
        pytest.skip("Store.version_figures is not in this tree yet")
    store = Store(in_process_redis())
    assert report_cli.read_figures(store, ()) == []
    assert "no journey versions with recorded figures" in report_cli.produce_report([], ())
