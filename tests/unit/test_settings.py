"""Settings of a deployed stage are checked when first read: a function refuses to start with a secret
too short to sign safely, and a function asked for a value its environment lacks names it."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigurationError, load_settings

DEPLOYED = {"RELAIS_STAGE": "prod", "RELAIS_TABLE_NAME": "relais", "AWS_REGION": "eu-west-3"}
LONG_ENOUGH = "x" * 32


@pytest.mark.parametrize("name", ["RELAIS_LINK_SECRET", "RELAIS_JWT_SECRET"])
def test_a_deployed_stage_refuses_a_signing_secret_shorter_than_32_bytes(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be at least 32 bytes long"):
        load_settings({**DEPLOYED, name: "x" * 31})
    assert load_settings({**DEPLOYED, name: LONG_ENOUGH})


def test_the_local_stage_keeps_its_short_documented_secrets() -> None:
    settings = load_settings(
        {
            **DEPLOYED,
            "RELAIS_STAGE": "local",
            "RELAIS_LINK_SECRET": "local-link-secret",
            "RELAIS_JWT_SECRET": "x",
        }
    )
    assert settings.signing_secret() == "local-link-secret"


def test_a_deployed_stage_refuses_a_jwks_address_that_is_not_https() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        load_settings(
            {
                **DEPLOYED,
                "RELAIS_JWKS_URL": "http://cognito.example/jwks.json",
                "RELAIS_JWT_ISSUER": "https://cognito.example",
                "RELAIS_JWT_AUDIENCE": "client",
            }
        )


def test_a_function_without_the_sender_or_the_link_secret_names_the_one_it_needed() -> None:
    settings = load_settings(DEPLOYED)
    with pytest.raises(ConfigurationError, match="RELAIS_FROM_ADDRESS"):
        settings.sender_address()
    with pytest.raises(ConfigurationError, match="RELAIS_LINK_SECRET"):
        settings.signing_secret()
