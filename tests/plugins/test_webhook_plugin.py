"""A third-party channel, installed as its own distribution with pip, found through its entry point, used to send.

Nothing is registered by hand: the only link between Loyaloop and the plugin is the
``[project.entry-points.loyaloop]`` table in the plugin's own ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import ConfigurationError, TransientError
from orchestrator.plugins import build_channels, get_plugin_manager
from orchestrator.settings import Settings
from tests.channels import factories
from tests.channels.loopback import LoopbackServer, Reply

DISTRIBUTION = Path(__file__).parent / "loyaloop-webhook-channel"


def _can_build_offline() -> bool:
    """The venv's setuptools can build a wheel itself (70.1+ ships bdist_wheel; older ones need `wheel`)."""
    try:
        version = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-installs the plugin into a private directory put on sys.path (the shared venv stays untouched)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / DISTRIBUTION.name
    shutil.copytree(
        DISTRIBUTION, source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )  # keep builds out of the repo
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    if _can_build_offline():
        command += ["--no-build-isolation", "--no-index"]  # build with the venv's own setuptools
    result = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("loyaloop_webhook", None)
        importlib.invalidate_caches()


@pytest.fixture
def webhook(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    monkeypatch.setenv("LOYALOOP_WEBHOOK_URL", f"{server.url}/hooks/loyaloop")
    monkeypatch.setenv("LOYALOOP_WEBHOOK_TOKEN", "hook-secret")
    yield server
    server.stop()


def test_plugin_is_discovered_through_its_entry_point(installed: Path, webhook: LoopbackServer) -> None:
    """The installed distribution's entry point brings the plugin in, loaded from the installed copy."""
    pm = get_plugin_manager()
    plugins = dict(pm.list_name_plugin())
    assert "webhook" in plugins
    assert Path(plugins["webhook"].__file__).is_relative_to(installed)
    assert {"email", "sms", "push", "outbox"} <= set(plugins)
    dist = next(d for p, d in pm.list_plugin_distinfo() if p is plugins["webhook"])
    assert dist.project_name == "loyaloop-webhook-channel"


def test_webhook_channel_sends_through_the_loopback_server(
    installed: Path, webhook: LoopbackServer, tmp_path: Path
) -> None:
    """`send: webhook` resolves to the plugin's channel, which POSTs the message as JSON."""
    webhook.queue(Reply(200, {"id": "hook-1"}))
    channels = build_channels(Settings(outbox_path=tmp_path / "outbox.jsonl"))
    channel = channels["webhook"]
    assert (channel.name, channel.address_field, channel.consent_key) == ("webhook", "email", "email")
    receipt = channel.send(factories.email(channel="webhook"))
    assert (receipt.provider, receipt.provider_message_id) == ("webhook", "hook-1")
    [seen] = webhook.requests
    assert (seen.method, seen.path) == ("POST", "/hooks/loyaloop")
    assert seen.headers["Authorization"] == "Bearer hook-secret"
    assert seen.headers["Idempotency-Key"] == "run-1:welcome_email"
    assert seen.json()["body"] == "Welcome aboard, Jane." and seen.json()["journey_id"] == "welcome"


def test_webhook_failures_map_to_loyaloop_errors(installed: Path, webhook: LoopbackServer, tmp_path: Path) -> None:
    """A third-party channel speaks the same error contract: 503 with Retry-After is transient."""
    webhook.queue(Reply(503, {}, {"Retry-After": "5"}))
    channel = build_channels(Settings(outbox_path=tmp_path / "outbox.jsonl"))["webhook"]
    with pytest.raises(TransientError) as caught:
        channel.send(factories.email(channel="webhook"))
    assert caught.value.retry_after == 5


def test_unconfigured_plugin_refuses_to_start(installed: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """loyaloop_configure runs first: an installed but unconfigured plugin stops start-up with the fix."""
    monkeypatch.delenv("LOYALOOP_WEBHOOK_URL", raising=False)
    with pytest.raises(ConfigurationError, match="LOYALOOP_WEBHOOK_URL"):
        build_channels(Settings(outbox_path=tmp_path / "outbox.jsonl"))


JOURNEY_YAML = """\
id: partner_hook
name: Partner notification
trigger:
  event: customer.signed_up
steps:
  - id: notify_partner
    send: webhook
    template: partner_hello
"""


def test_a_journey_sends_through_the_third_party_channel(
    installed: Path, webhook: LoopbackServer, redis_url: str, tmp_path: Path
) -> None:
    """A journey saying `send: webhook` validates against the plugin's channel name and, run by the real
    runtime on a real Redis and Dramatiq worker, delivers through the plugin to its HTTP endpoint."""
    from orchestrator.language.loader import load_journeys
    from tests.runtime.harness import running

    webhook.queue(Reply(200, {"id": "hook-42"}))
    journeys_dir = tmp_path / "journeys"
    journeys_dir.mkdir()
    (journeys_dir / "partner_hook.yaml").write_text(JOURNEY_YAML, encoding="utf-8")
    templates = tmp_path / "templates"
    (templates / "webhook").mkdir(parents=True)
    (templates / "webhook" / "partner_hello.txt.j2").write_text("New member {{ profile.first_name }}", encoding="utf-8")
    channel_names = set(build_channels(Settings(outbox_path=tmp_path / "outbox.jsonl")))
    loaded = load_journeys(journeys_dir, templates, channels=channel_names)

    with running(redis_url, tmp_path, list(loaded.values())) as h:
        h.api.identify("c9", {"email": "c9@example.com", "consent": {"email": True}, "first_name": "Noor"})
        h.api.track("c9", "customer.signed_up", {})
        h.settle()
        stats = h.stats("partner_hook")

    [seen] = webhook.requests
    body = seen.json()
    assert (body["journey_id"], body["step_id"], body["customer_id"]) == ("partner_hook", "notify_partner", "c9")
    assert body["body"] == "New member Noor"
    assert seen.headers["Idempotency-Key"].endswith(":notify_partner")
    assert stats["notify_partner:sent:webhook"] == 1
    assert h.outbox() == []  # it went through the plugin, not the outbox


def test_a_journey_naming_an_unknown_channel_is_refused_without_the_plugin(tmp_path: Path) -> None:
    """Without the plugin installed, the same journey is refused at validation with the channel named."""
    from orchestrator.errors import ValidationFailed
    from orchestrator.language.loader import load_journeys

    journeys_dir = tmp_path / "journeys"
    journeys_dir.mkdir()
    (journeys_dir / "partner_hook.yaml").write_text(JOURNEY_YAML, encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        load_journeys(journeys_dir, tmp_path / "templates", channels={"email", "sms", "push", "outbox"})
    assert any(
        "unknown channel 'webhook'" in p.message and (p.line, p.column) == (7, 11) for p in caught.value.problems
    )
