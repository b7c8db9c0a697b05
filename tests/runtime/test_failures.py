"""A failure is logged with its traceback, its causes included, and without addresses or numbers."""

from __future__ import annotations

import logging

import pytest

from orchestrator.runtime.failures import log_failure, redact, redacted_traceback


def test_addresses_and_phone_numbers_are_blanked() -> None:
    """E-mail addresses and phone numbers become placeholders; other text stays."""
    text = "no key 'ann@example.com' for +31 6 1234 5678 in line 42"
    assert redact(text) == "no key '<email>' for <phone> in line 42"


def _fail() -> None:
    try:
        {}["bob@example.org"]
    except KeyError as exc:
        raise RuntimeError("while handling +14155550100") from exc


def test_the_traceback_names_the_frames_and_causes_but_no_address() -> None:
    """The chained cause is part of the traceback, and every quoted address in it is blanked."""
    try:
        _fail()
    except RuntimeError as exc:
        text = redacted_traceback(exc)
    assert "Traceback (most recent call last)" in text and "in _fail" in text
    assert "KeyError: '<email>'" in text and "RuntimeError: while handling <phone>" in text
    assert "bob@example.org" not in text and "4155550100" not in text


def test_log_failure_puts_the_redacted_traceback_in_the_message(caplog: pytest.LogCaptureFixture) -> None:
    """The record carries no exc_info (a handler cannot print the raw traceback) and names its caller."""
    logger = logging.getLogger("tests.failures")
    try:
        _fail()
    except RuntimeError as exc:
        with caplog.at_level(logging.ERROR, logger="tests.failures"):
            log_failure(logger, logging.ERROR, "a %s failed", "thing", exc=exc)
    (record,) = caplog.records
    assert record.getMessage().startswith("a thing failed\nTraceback") and record.exc_info is None
    assert record.funcName == "test_log_failure_puts_the_redacted_traceback_in_the_message"
    assert "bob@example.org" not in caplog.text
