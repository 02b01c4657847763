"""The portal authorizer: a link's secret opens one dossier and one role until it expires or is revoked.
Only the SHA-256 of the secret is stored."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.dynamodb.repositories import portal_token_item
from chalicelib.api.authorizers import Unauthorized, portal_authorizer
from chalicelib.domain.identity import PortalPrincipal
from chalicelib.services.identity import hash_portal_secret
from chalicelib.wiring import Container

ISSUED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ARN = "arn:aws:execute-api:eu-west-3:123456789012:abcdef/api/GET/portal"


def _authorize(secret: str) -> dict[str, Any]:
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {secret}", "methodArn": ARN}
    return dict(portal_authorizer(event, {}))


@pytest.fixture
def link(aws: Container) -> str:
    secret = secrets.token_urlsafe(32)
    aws.clock = lambda: ISSUED
    principal = PortalPrincipal("A1", "D1", "garant", "")
    portal_token_item(hash_portal_secret(secret), principal, ISSUED + timedelta(days=30)).save()
    return secret


def test_a_live_link_opens_its_dossier_and_role(link: str) -> None:
    answer = _authorize(link)
    assert answer["context"] == {
        "account_id": "A1",
        "dossier_id": "D1",
        "role_id": "garant",
        "participant_id": "main",
        "generation": "0",
    }
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_the_table_holds_the_hash_of_the_secret_never_the_secret(aws: Container, link: str) -> None:
    dynamodb = aws.client("dynamodb")
    item = dynamodb.get_item(
        TableName=aws.settings.table_name,
        Key={"PK": {"S": f"PORTALTOKEN#{hash_portal_secret(link)}"}, "SK": {"S": "PORTALTOKEN"}},
    )["Item"]
    assert link not in str(item)


def test_an_unknown_secret_is_refused(link: str) -> None:
    with pytest.raises(Unauthorized):
        _authorize(link + "x")


def test_a_revoked_link_dies_at_once(aws: Container, link: str) -> None:
    aws.portal_tokens.revoke(hash_portal_secret(link))
    with pytest.raises(Unauthorized):
        _authorize(link)


def test_an_expired_link_is_refused(aws: Container, link: str) -> None:
    aws.clock = lambda: ISSUED + timedelta(days=30, seconds=-1)
    assert _authorize(link)["context"]["dossier_id"] == "D1"
    aws.clock = lambda: ISSUED + timedelta(days=30)
    with pytest.raises(Unauthorized):
        _authorize(link)
