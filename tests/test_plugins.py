"""The plugin manager: built-ins through entry points, every hook called as documented, broken plugins refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pluggy
import pytest

import channels.webhook
from channels.email import SendGridEmail
from channels.outbox import OutboxChannel
from channels.push import FcmPush
from channels.sms import TwilioSms
from orchestrator import plugins
from orchestrator.errors import ConfigurationError, DeliveryError, PermanentError, PluginError, TransientError
from orchestrator.hookspecs import hookimpl
from orchestrator.message import ActionCall, ActionReply, Channel, Message, Receipt
from orchestrator.settings import Settings
from tests.channels import factories

PROVIDER_ENV = (
    "SENDGRID_API_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "FCM_SERVICE_ACCOUNT_JSON",
    "GOOGLE_APPLICATION_CREDENTIALS",
    plugins.DISABLE_ENV,
)


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(outbox_path=tmp_path / "outbox.jsonl")


class Pigeon:
    """A minimal channel for test plugins."""

    address_field = "email"
    consent_key = "email"

    def __init__(self, name: str = "pigeon") -> None:
        self.name = name
        self.sent: list[Message] = []

    def send(self, message: Message) -> Receipt:
        self.sent.append(message)
        return Receipt(channel=self.name, provider="pigeon", provider_message_id=str(len(self.sent)))


class PigeonPlugin:
    """Implements every hook, recording the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.channel = Pigeon()
        self.sent: list[tuple[Message, Receipt]] = []
        self.failed: list[tuple[Message, DeliveryError]] = []

    @hookimpl
    def loyaloop_configure(self, settings: Settings) -> None:
        self.calls.append(f"configure:{settings.default_locale}")

    @hookimpl
    def loyaloop_register_channels(self, register: Any) -> None:  # a subset of the hook's parameters
        self.calls.append("register")
        register(self.channel)

    @hookimpl
    def loyaloop_prepare_message(self, message: Message, profile: dict[str, Any], journey_id: str) -> Message:
        return replace(message, metadata={**message.metadata, "utm_campaign": journey_id, "tier": profile["tier"]})

    @hookimpl
    def loyaloop_message_sent(self, message: Message, receipt: Receipt) -> None:
        self.sent.append((message, receipt))

    @hookimpl
    def loyaloop_message_failed(self, message: Message, error: DeliveryError) -> None:
        self.failed.append((message, error))

    @hookimpl
    def loyaloop_template_filters(self) -> dict[str, Any]:
        return {"shout": lambda text: f"{text.upper()}!"}

    @hookimpl
    def loyaloop_template_globals(self) -> dict[str, Any]:
        return {"brand": "Loyaloop Coffee"}


def manager(*extra: tuple[str, object]) -> pluggy.PluginManager:
    pm = plugins.get_plugin_manager()
    for name, plugin in extra:
        plugins.register_plugin(pm, plugin, name)
    return pm


# --- discovery ---------------------------------------------------------------------------------
def test_built_in_channels_load_through_their_entry_points() -> None:
    """email/sms/push/outbox come from the `loyaloop` entry-point group of the installed distribution."""
    pm = plugins.get_plugin_manager()
    names = dict(pm.list_name_plugin())
    assert {"email", "sms", "push", "outbox"} <= set(names)
    from_distribution = {name for name, plugin in names.items() for p, d in pm.list_plugin_distinfo() if p is plugin}
    assert {"email", "sms", "push", "outbox"} <= from_distribution


def test_built_ins_are_registered_even_without_package_metadata() -> None:
    """Run from a bare checkout (no entry points), the same modules are registered by name."""
    pm = plugins.get_plugin_manager(load_entry_points=False)
    assert {"email", "sms", "push", "outbox"} <= {name for name, _ in pm.list_name_plugin()}


def test_without_credentials_every_provider_channel_is_the_outbox(settings: Settings) -> None:
    """No provider secrets in the environment: email, sms and push all write to the outbox, under their own names."""
    channels = plugins.build_channels(settings)
    assert set(channels) == {"email", "sms", "push", "outbox"}
    for name, channel in channels.items():
        assert isinstance(channel, OutboxChannel) and channel.name == name and channel.path == settings.outbox_path
        assert isinstance(channel, Channel)
    assert channels["sms"].address_field == "phone" and channels["push"].address_field == "push_token"


def test_with_credentials_the_real_providers_are_used(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Credentials switch each channel to its provider; the journeys still say `send: email`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    account = tmp_path / "sa.json"
    account.write_text(
        '{"type": "service_account", "project_id": "p", "client_email": "a@p.iam.gserviceaccount.com", '
        f'"private_key": {pem.decode()!r}, "token_uri": "http://127.0.0.1:9/token"}}'.replace("'", '"')
    )
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.x")
    monkeypatch.setenv("LOYALOOP_EMAIL_FROM", "news@brand.example")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "t")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+3197010254321")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account))
    channels = plugins.build_channels(settings)
    assert isinstance(channels["email"], SendGridEmail)
    assert isinstance(channels["sms"], TwilioSms)
    assert isinstance(channels["push"], FcmPush)
    assert isinstance(channels["outbox"], OutboxChannel)


def test_half_configured_provider_stops_start_up(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """loyaloop_configure of the built-in email plugin refuses a key without a sender."""
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.x")
    monkeypatch.delenv("LOYALOOP_EMAIL_FROM", raising=False)
    with pytest.raises(ConfigurationError, match="LOYALOOP_EMAIL_FROM"):
        plugins.build_channels(settings)


# --- each hook ---------------------------------------------------------------------------------
def test_configure_runs_before_registration(settings: Settings) -> None:
    """loyaloop_configure sees the settings before any channel is registered; a plugin may take fewer arguments."""
    plugin = PigeonPlugin()
    channels = plugins.build_channels(settings, manager(("pigeon", plugin)))
    assert plugin.calls == ["configure:en", "register"]
    assert channels["pigeon"] is plugin.channel


def test_duplicate_channel_names_are_refused_naming_both_plugins(settings: Settings) -> None:
    """Two plugins registering `pigeon` stop start-up; the error names both plugins and the fix."""
    pm = manager(("first-pigeons", PigeonPlugin()), ("second-pigeons", PigeonPlugin()))
    with pytest.raises(PluginError, match="'pigeon' is registered twice") as caught:
        plugins.build_channels(settings, pm)
    assert "first-pigeons" in str(caught.value) and "second-pigeons" in str(caught.value)
    assert plugins.DISABLE_ENV in str(caught.value)


def test_a_built_in_can_be_replaced_after_blocking_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering `email` clashes with the built-in unless LOYALOOP_DISABLE_PLUGINS=email blocks it."""

    class OtherEmail:
        @hookimpl
        def loyaloop_register_channels(self, register: Any) -> None:
            register(Pigeon("email"))

    with pytest.raises(PluginError, match="'email' is registered twice"):
        plugins.build_channels(settings, manager(("other-email", OtherEmail())))
    monkeypatch.setenv(plugins.DISABLE_ENV, "email")
    channels = plugins.build_channels(settings, manager(("other-email", OtherEmail())))
    assert isinstance(channels["email"], Pigeon)


@pytest.mark.parametrize(
    ("channel", "needle"),
    [(object(), "not a Channel"), (Pigeon("Bad Name"), "lower-case")],
)
def test_registering_something_that_is_not_a_channel_is_refused(
    settings: Settings, channel: object, needle: str
) -> None:
    """A registered object must satisfy the Channel protocol and carry an identifier-like name."""

    class Broken:
        @hookimpl
        def loyaloop_register_channels(self, register: Any) -> None:
            register(channel)

    with pytest.raises(PluginError, match=needle):
        plugins.build_channels(settings, manager(("broken", Broken())))


def test_a_crashing_registration_names_the_plugin(settings: Settings) -> None:
    """An unexpected exception while registering becomes a PluginError that names the plugin."""

    class Crashing:
        @hookimpl
        def loyaloop_register_channels(self) -> None:
            raise RuntimeError("boom")

    with pytest.raises(PluginError, match=r"'crashing'.*RuntimeError: boom"):
        plugins.build_channels(settings, manager(("crashing", Crashing())))


def test_prepare_message_chains_plugins(settings: Settings) -> None:
    """Each plugin sees the previous one's result; None leaves the message as it was."""

    class Utm:
        @hookimpl(trylast=True)
        def loyaloop_prepare_message(self, message: Message) -> Message:
            return replace(message, body=message.body + " [utm]")

    class Nothing:
        @hookimpl
        def loyaloop_prepare_message(self, message: Message) -> None:
            return None

    pm = manager(("pigeon", PigeonPlugin()), ("utm", Utm()), ("nothing", Nothing()))
    prepared = plugins.prepare_message(pm, factories.email(), {"tier": "gold"}, "welcome")
    assert prepared.metadata == {"utm_campaign": "welcome", "tier": "gold"}
    assert prepared.body.endswith(" [utm]")


def test_prepare_message_must_return_a_message() -> None:
    """Returning anything but a Message or None is a PluginError naming the plugin."""

    class Wrong:
        @hookimpl
        def loyaloop_prepare_message(self, message: Message) -> dict[str, str]:
            return {"body": "x"}

    with pytest.raises(PluginError, match="'wrong' returned dict"):
        plugins.prepare_message(manager(("wrong", Wrong())), factories.email(), {}, "welcome")


def test_observers_see_sent_and_failed_messages() -> None:
    """notify_sent / notify_failed reach every observer with the message and the receipt or error."""
    plugin = PigeonPlugin()
    pm = manager(("pigeon", plugin))
    message = factories.email()
    receipt = Receipt(channel="email", provider="outbox", provider_message_id="1")
    error = PermanentError("bounced", suppress=True)
    plugins.notify_sent(pm, message, receipt)
    plugins.notify_failed(pm, message, error)
    plugins.notify_failed(pm, message, TransientError("later"))
    assert plugin.sent == [(message, receipt)]
    assert plugin.failed[0][1] is error and len(plugin.failed) == 2


def test_a_failing_observer_is_logged_without_personal_data_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    """An observer's exception never reaches the sender; the log names the plugin and type, not the address."""

    class Flaky:
        @hookimpl
        def loyaloop_message_sent(self, message: Message) -> None:
            raise ValueError(f"cannot handle {message.to}")

    plugin = PigeonPlugin()
    pm = manager(("pigeon", plugin), ("flaky", Flaky()))
    message = factories.email()
    plugins.notify_sent(pm, message, Receipt(channel="email", provider="outbox", provider_message_id="1"))
    assert len(plugin.sent) == 1  # the other observer still ran
    assert "'flaky'" in caplog.text and "ValueError" in caplog.text
    assert message.to not in caplog.text


def test_template_filters_and_globals_are_merged() -> None:
    """Filters and globals from every plugin arrive in one dict each."""
    pm = manager(("pigeon", PigeonPlugin()))
    filters = plugins.template_filters(pm)
    assert filters["shout"]("hi") == "HI!"
    assert plugins.template_globals(pm)["brand"] == "Loyaloop Coffee"


def test_a_template_name_offered_twice_is_refused() -> None:
    """Two plugins offering the filter `shout` is a PluginError naming both."""
    pm = manager(("one", PigeonPlugin()), ("two", PigeonPlugin()))
    with pytest.raises(PluginError, match=r"'shout' is provided by plugin '(one|two)' and by plugin '(one|two)'"):
        plugins.template_filters(pm)
    with pytest.raises(PluginError, match="'brand'"):
        plugins.template_globals(pm)


# --- broken plugins ----------------------------------------------------------------------------
def test_a_misspelled_hook_is_refused() -> None:
    """`loyaloop_register_channel` (no s) is not silently ignored: registering the plugin fails."""

    class Typo:
        @hookimpl
        def loyaloop_register_channel(self, register: Any) -> None:
            raise AssertionError("never called")

    with pytest.raises(PluginError, match="loyaloop_register_channel"):
        manager(("typo", Typo()))


def test_an_unknown_hook_parameter_is_refused() -> None:
    """Asking for a parameter the hook does not have (`setings`) is refused at registration."""

    class Typo:
        @hookimpl
        def loyaloop_configure(self, setings: Settings) -> None:
            raise AssertionError("never called")

    with pytest.raises(PluginError, match="setings"):
        manager(("typo", Typo()))


def test_an_installed_plugin_with_a_misspelled_hook_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution found through its entry point with a misspelled hook makes get_plugin_manager fail."""
    (tmp_path / "typo_plugin.py").write_text(
        "from orchestrator.hookspecs import hookimpl\n\n@hookimpl\ndef loyaloop_register_chanels(register):\n    pass\n"
    )
    info = tmp_path / "typo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: typo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loyaloop]\ntypo = typo_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "typo_plugin", raising=False)
    with pytest.raises(PluginError, match="loyaloop_register_chanels"):
        plugins.get_plugin_manager()
    monkeypatch.setenv(plugins.DISABLE_ENV, "typo")
    assert dict(plugins.get_plugin_manager().list_name_plugin()).get("typo") is None  # blocked: never loaded


def test_an_installed_plugin_that_fails_to_import_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point whose module cannot be imported is a PluginError with the way out."""
    info = tmp_path / "ghost_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ghost-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loyaloop]\nghost = ghost_plugin_missing_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=plugins.DISABLE_ENV):
        plugins.get_plugin_manager()


def test_channels_register_and_send_end_to_end(settings: Settings) -> None:
    """A registered test channel is returned by name and sends."""
    plugin = PigeonPlugin()
    channels = plugins.build_channels(settings, manager(("pigeon", plugin)))
    receipt = channels["pigeon"].send(factories.email(channel="pigeon"))
    assert receipt.provider_message_id == "1" and plugin.channel.sent[0].channel == "pigeon"


def test_a_module_declared_under_two_entry_points_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution pointing a second entry point at an already-loaded module is a PluginError, not a crash."""
    info = tmp_path / "copycat_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: copycat-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loyaloop]\nzz_copycat = channels.email\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="declared twice"):
        plugins.get_plugin_manager()


def test_a_crashing_configure_names_the_plugin(settings: Settings) -> None:
    """An unexpected exception in loyaloop_configure is a PluginError naming the plugin; ConfigurationError passes."""

    class Crashing:
        @hookimpl
        def loyaloop_configure(self) -> None:
            raise KeyError("API_KEY")

    with pytest.raises(PluginError, match=r"'crashing' failed in loyaloop_configure: KeyError"):
        plugins.build_channels(settings, manager(("crashing", Crashing())))


def test_plugins_add_action_kinds_and_a_name_twice_is_refused() -> None:
    class Crm:
        name = "crm_tag"

        def call(self, call: ActionCall, config: dict[str, Any]) -> ActionReply:
            return ActionReply(200, {"tagged": call.customer_id})

    class CrmPlugin:
        @hookimpl
        def loyaloop_register_action_kinds(self, register: Any, settings: Settings) -> None:
            register(Crm())

    pm = plugins.get_plugin_manager()
    if not pm.is_registered(channels.webhook) and pm.get_plugin("webhook") is None:
        pm.register(channels.webhook, name="webhook")  # an entry point once the package is reinstalled
    plugins.register_plugin(pm, CrmPlugin(), "crm")
    kinds = plugins.build_action_kinds(Settings(), pm)
    assert set(kinds) == {"webhook", "crm_tag"}
    call = ActionCall("crm", "run-1:tag", "ann", "vip", "tag", "run-1", {})
    assert kinds["crm_tag"].call(call, {}) == ActionReply(200, {"tagged": "ann"})
    plugins.register_plugin(pm, CrmPlugin(), "crm-again")
    with pytest.raises(PluginError, match="'crm_tag' is registered twice"):
        plugins.build_action_kinds(Settings(), pm)
