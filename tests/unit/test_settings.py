"""Settings of a deployed stage are checked when first read: a function refuses to start with a secret
too short to sign safely, and a function asked for a value its environment lacks names it. A deployed
stage's secrets come from SSM Parameter Store, their names only in the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
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


def test_a_function_deployed_as_another_stage_than_the_one_packaged_refuses_to_start() -> None:
    assert load_settings({**DEPLOYED, "AWS_LAMBDA_FUNCTION_NAME": "relais-prod-api_handler"})
    with pytest.raises(
        ConfigurationError, match="relais-dev-api_handler runs code packaged for the stage prod"
    ):
        load_settings({**DEPLOYED, "AWS_LAMBDA_FUNCTION_NAME": "relais-dev-api_handler"})
    with pytest.raises(ConfigurationError, match="packaged for the stage prod"):
        load_settings({**DEPLOYED, "AWS_LAMBDA_FUNCTION_NAME": "relais-production-api_handler"})


def test_a_function_without_the_sender_or_the_link_secret_names_the_one_it_needed() -> None:
    settings = load_settings(DEPLOYED)
    with pytest.raises(ConfigurationError, match="RELAIS_FROM_ADDRESS"):
        settings.sender_address()
    with pytest.raises(ConfigurationError, match="RELAIS_LINK_SECRET"):
        settings.signing_secret()


@pytest.fixture
def ssm() -> Iterator[Any]:
    """Parameter Store on moto, with Powertools' cache of secrets emptied before and after."""
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("ssm", region_name="eu-west-3")
    parameters.clear_caches()


def test_a_deployed_stage_reads_its_link_secret_from_ssm_and_refuses_a_short_one(ssm: Any) -> None:
    ssm.put_parameter(Name="/relais/prod/link-secret", Value=LONG_ENOUGH, Type="SecureString")
    ssm.put_parameter(Name="/relais/prod/short", Value="x" * 31, Type="SecureString")
    settings = load_settings({**DEPLOYED, "RELAIS_LINK_SECRET_PARAMETER": "/relais/prod/link-secret"})
    assert settings.signing_secret() == LONG_ENOUGH
    short = load_settings({**DEPLOYED, "RELAIS_LINK_SECRET_PARAMETER": "/relais/prod/short"})
    with pytest.raises(ConfigurationError, match="/relais/prod/short must be at least 32 bytes long"):
        short.signing_secret()


def test_a_deployed_stage_reads_maileva_from_one_ssm_parameter_naming_any_missing_field(ssm: Any) -> None:
    account = {
        "base_url": "https://api.sandbox.maileva.net/registered_mail/v4",
        "auth_url": "https://connexion.sandbox.maileva.net/auth/realms/services/protocol/openid-connect",
        "client_id": "id",
        "client_secret": "secret",
        "username": "user",
        "password": "password",
    }
    ssm.put_parameter(Name="/relais/prod/maileva", Value=json.dumps(account), Type="SecureString")
    ssm.put_parameter(
        Name="/relais/prod/half", Value=json.dumps({**account, "password": ""}), Type="SecureString"
    )
    settings = load_settings({**DEPLOYED, "RELAIS_MAILEVA_PARAMETER": "/relais/prod/maileva"})
    maileva = settings.maileva_account()
    assert maileva is not None
    assert (maileva.username, maileva.password) == ("user", "password")
    assert load_settings(DEPLOYED).maileva_account() is None
    half = load_settings({**DEPLOYED, "RELAIS_MAILEVA_PARAMETER": "/relais/prod/half"})
    with pytest.raises(ConfigurationError, match="/relais/prod/half lacks password"):
        half.maileva_account()
    ssm.put_parameter(Name="/relais/prod/text", Value="user:password", Type="SecureString")
    text = load_settings({**DEPLOYED, "RELAIS_MAILEVA_PARAMETER": "/relais/prod/text"})
    with pytest.raises(ConfigurationError, match="/relais/prod/text is not a JSON object"):
        text.maileva_account()
