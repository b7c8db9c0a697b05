"""The shop's endpoints that ``action`` steps may call, as ``settings.yaml`` declares them.

A journey names an endpoint, never a URL: the URL and the signing secret come from the
environment (ops' side, like every secret), so a marketer editing a journey cannot make a worker
call an arbitrary host, and a committed settings file holds no secret.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

ENV_NAME = r"^[A-Z][A-Z0-9_]*$"


class Endpoint(BaseModel):
    """One endpoint under ``endpoints:``; ``kind`` is ``webhook`` or an action kind a plugin adds
    (which may document fields of its own: they are kept and handed to it)."""

    model_config = ConfigDict(extra="allow")

    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")] = "webhook"
    #: The environment variable holding the URL (``https://…``; ``http://`` only to loopback).
    url_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    #: The environment variable holding the HMAC-SHA256 signing secret (at least 32 characters).
    secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None
    #: Seconds to wait for an answer; longer is a transient failure, retried with back-off.
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    #: Calls per second to this endpoint, shared by every worker (None: no limit).
    rate_limit: Annotated[float, Field(gt=0)] | None = None
    #: The largest response body read (bytes); a larger one is a permanent failure.
    max_response: Annotated[int, Field(ge=1024, le=1_048_576)] = 65_536
    #: The answer previews (``render``, ``send-test``, the console) and ``simulate`` use in place of
    #: a real call, so templates reading ``step.<save_as>`` show something shaped like the shop's
    #: answer; nothing is ever called to preview or simulate a journey (None: an empty answer).
    example: dict[str, Any] | None = None
