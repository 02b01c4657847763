"""Which registered-mail provider a stage uses: the simulated one locally, Maileva where all of its settings
are given, none otherwise; a half-configured Maileva stops the function at start."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigurationError, load_settings

BASE = {
    "RELAIS_STAGE": "prod",
    "RELAIS_TABLE_NAME": "relais",
    "RELAIS_FROM_ADDRESS": "notifications@relais.example",
    "RELAIS_LINK_SECRET": "a-link-secret-of-at-least-32-bytes!",
    "AWS_REGION": "eu-west-3",
}
MAILEVA = {
    "RELAIS_MAILEVA_BASE_URL": "https://api.sandbox.maileva.net/registered_mail/v4",
    "RELAIS_MAILEVA_AUTH_URL": "https://connexion.sandbox.maileva.net/auth/realms/services/protocol/openid-connect",
    "RELAIS_MAILEVA_CLIENT_ID": "id",
    "RELAIS_MAILEVA_CLIENT_SECRET": "secret",
    "RELAIS_MAILEVA_USERNAME": "user",
    "RELAIS_MAILEVA_PASSWORD": "password",
}


def _provider(environ: dict[str, str]) -> object:
    """The provider of the container the stage's process builds (the local stack's in the local stage)."""
    from chalicelib.local.container import LocalContainer
    from chalicelib.wiring import Container

    settings = load_settings(environ)
    kind = LocalContainer if settings.stage == "local" else Container
    container = kind.__new__(kind)
    container.settings = settings
    return kind.registered_mail.func(container)  # type: ignore[attr-defined]


def test_a_deployed_stage_without_maileva_settings_has_no_provider() -> None:
    assert load_settings(BASE).maileva is None
    assert _provider(BASE) is None


def test_a_deployed_stage_with_every_maileva_setting_uses_maileva() -> None:
    from chalicelib.adapters.maileva import MailevaRegisteredMail

    assert isinstance(_provider({**BASE, **MAILEVA}), MailevaRegisteredMail)


def test_the_local_stage_uses_the_simulated_provider() -> None:
    from chalicelib.adapters.simulated_registered_mail import SimulatedRegisteredMail

    assert isinstance(_provider({**BASE, "RELAIS_STAGE": "local"}), SimulatedRegisteredMail)


def test_half_the_maileva_settings_stop_the_function_naming_what_is_missing() -> None:
    partial = {**BASE, **MAILEVA, "RELAIS_MAILEVA_PASSWORD": ""}
    with pytest.raises(ConfigurationError, match="RELAIS_MAILEVA_PASSWORD"):
        load_settings(partial)
