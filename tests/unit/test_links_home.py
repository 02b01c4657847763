"""Where links lead: the portal page on the API's own host unless RELAIS_PORTAL_URL says otherwise, and
the API's address as a request reached it."""

from __future__ import annotations

import pytest
from chalice.app import Request

from chalicelib.api.requests import api_url_of
from chalicelib.config import ConfigurationError, load_settings, portal_page_url

BASE = {
    "RELAIS_STAGE": "prod",
    "RELAIS_TABLE_NAME": "relais",
    "RELAIS_FROM_ADDRESS": "notifications@relais.example",
    "RELAIS_LINK_SECRET": "a-link-secret-of-thirty-two-bytes",
    "AWS_REGION": "eu-west-3",
}


def test_the_portal_page_defaults_to_p_on_the_api_and_an_explicit_url_wins() -> None:
    api = "https://abc.execute-api.eu-west-3.amazonaws.com/api"
    assert portal_page_url(load_settings({**BASE, "RELAIS_API_URL": api + "/"})) == f"{api}/p"
    assert portal_page_url(load_settings(BASE), api_url=api) == f"{api}/p"
    explicit = load_settings({**BASE, "RELAIS_PORTAL_URL": "https://portail.cabinet.fr/"})
    assert portal_page_url(explicit, api_url=api) == "https://portail.cabinet.fr/"
    with pytest.raises(ConfigurationError, match="RELAIS_API_URL"):
        portal_page_url(load_settings(BASE))


def _request(headers: dict[str, str], stage: str = "api") -> Request:
    return Request(
        {
            "multiValueQueryStringParameters": None,
            "headers": headers,
            "pathParameters": None,
            "requestContext": {"stage": stage, "httpMethod": "GET", "resourcePath": "/dossiers"},
            "body": None,
            "isBase64Encoded": False,
            "stageVariables": None,
        }
    )


def test_the_api_address_is_read_from_the_request_with_its_stage_on_execute_api_only() -> None:
    assert (
        api_url_of(_request({"host": "abc.execute-api.eu-west-3.amazonaws.com"}))
        == "https://abc.execute-api.eu-west-3.amazonaws.com/api"
    )
    assert (
        api_url_of(_request({"host": "api.relais.fr", "x-forwarded-proto": "https"}))
        == "https://api.relais.fr"
    )
    assert api_url_of(_request({})) is None
