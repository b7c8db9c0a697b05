"""Logging a failure nobody planned for: with its traceback, without a customer's address in it.

A bug that is caught and logged by name only (``KeyError``) cannot be found again; one logged with
``exc_info`` may put an e-mail address or a phone number in the logs, because an exception's text
often quotes the value it choked on (``KeyError('ann@example.com')``).  So the traceback is
formatted here and anything that looks like an address or a number is blanked before it is logged.
Only the text of the exceptions is at risk: the frames show source lines, never local values.
"""

from __future__ import annotations

import logging
import re
import traceback

# The same shapes the channels blank in provider errors (``channels.http.redact``), which this layer
# may not import: a channel plugin may import only the plugin API.
_EMAIL = re.compile(r"[^\s@<>\"',;:()]+@[^\s@<>\"',;:()]+")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def redact(text: str) -> str:
    """Blank anything that looks like an e-mail address or a phone number."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


def redacted_traceback(exc: BaseException) -> str:
    """The exception's traceback (its causes included) as logging would print it, redacted."""
    return redact("".join(traceback.format_exception(exc)).rstrip())


def log_failure(logger: logging.Logger, level: int, message: str, *args: object, exc: BaseException) -> None:
    """Log ``message % args`` followed by ``exc``'s redacted traceback.

    The traceback goes into the message rather than ``exc_info``, so no handler or formatter can
    print the unredacted one next to it.  ``args`` must not carry personal data themselves.
    """
    logger.log(level, message + "\n%s", *args, redacted_traceback(exc), stacklevel=2)
