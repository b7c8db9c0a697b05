"""`loyaloop vouchers load / stock` against a real Redis: files checked whole, codes loaded once, low stock flagged."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

SETTINGS = """\
vouchers:
  birthday:
    kind: pool
    low_stock: 3
  welcome:
    kind: generated
    prefix: W-
"""


@pytest.fixture
def env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "settings.yaml").write_text(SETTINGS, encoding="utf-8")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOYALOOP_JOURNEYS", str(tmp_path / "journeys"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_then_stock_and_a_second_load_skips_what_was_loaded(env: Path) -> None:
    codes = env / "codes.csv"
    codes.write_text("code\nB-1\nB-2\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["vouchers", "load", "birthday", str(codes)])
    assert result.exit_code == 0 and "loaded 2 code(s) into birthday" in result.output
    codes.write_text("code\nB-2\nB-3\n", encoding="utf-8")
    result = runner.invoke(cli, ["vouchers", "load", "birthday", str(codes)])
    assert "loaded 1 code(s) into birthday; 1 were loaded before and skipped" in result.output
    stock = runner.invoke(cli, ["vouchers", "stock"])
    assert "birthday: 3 free, 0 handed out" in stock.output and "LOW" not in stock.output
    assert "welcome: generated codes" in stock.output


def test_a_bad_file_loads_nothing_and_names_its_lines(env: Path) -> None:
    codes = env / "codes.txt"
    codes.write_text("B-1\n\nB-1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["vouchers", "load", "birthday", str(codes)])
    assert result.exit_code == 1
    assert f"{codes}:2:1: blank line" in result.output and f"{codes}:3:1: code 'B-1' repeats line 1" in result.output
    assert (
        "birthday: 0 free, 0 handed out  LOW: fewer than 3 left"
        in CliRunner().invoke(cli, ["vouchers", "stock"]).output
    )


def test_an_unknown_or_generated_pool_is_one_clear_line(env: Path) -> None:
    codes = env / "codes.txt"
    codes.write_text("B-1\n", encoding="utf-8")
    unknown = CliRunner().invoke(cli, ["vouchers", "load", "birthdy", str(codes)])
    assert unknown.exit_code != 0 and "unknown voucher pool 'birthdy'; did you mean 'birthday'?" in str(
        unknown.exception
    )
    generated = CliRunner().invoke(cli, ["vouchers", "load", "welcome", str(codes)])
    assert generated.exit_code != 0 and "nothing to load" in str(generated.exception)
