"""The loyaloop command never shows a traceback: every failure is one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import cli


def test_a_missing_file_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that does not exist is named, without a traceback."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(["import", str(tmp_path / "nope.jsonl")])
    err = capsys.readouterr().err
    assert stopped.value.code != 0
    assert "Traceback" not in err
    assert "nope.jsonl" in err


def test_an_unexpected_error_is_reported_as_a_bug_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error Loyaloop did not expect still ends in one line (exit 2) that says how to see more."""

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.delenv("LOYALOOP_DEBUG", raising=False)
    monkeypatch.setattr(cli.cli, "main", explode)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["status"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.strip() == "error: unexpected RuntimeError: boom (a bug in Loyaloop; LOYALOOP_DEBUG=1 shows the details)"


def test_every_listed_command_imports() -> None:
    """Each sub-command in the map resolves to a click command (a typo would break --help)."""
    import click

    context = click.Context(cli.cli)
    for name in cli.COMMANDS:
        assert isinstance(cli.cli.get_command(context, name), click.Command), name


def test_a_misspelt_command_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    """`loyaloop valdiate` gave "No such command" without a suggestion."""
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["valdiate"])
    assert caught.value.code == 2
    assert "No such command 'valdiate'; did you mean 'validate'?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["zzzzzz"])
    assert "No such command 'zzzzzz'." in capsys.readouterr().err
