"""Unsubscribe tokens: they name one addressee of one account, and nothing forged passes."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.unsubscribe import Addressee, read_unsubscribe_token, unsubscribe_token

SECRET = "link-secret"
CLIENT = Addressee("01ACCOUNT", "client", "01CLIENT")


def test_a_token_reads_back_the_addressee_it_names() -> None:
    assert read_unsubscribe_token(SECRET, unsubscribe_token(SECRET, CLIENT)) == CLIENT
    apporteur = Addressee("01ACCOUNT", "apporteur", "01APPORTEUR")
    assert read_unsubscribe_token(SECRET, unsubscribe_token(SECRET, apporteur)) == apporteur


def test_tokens_are_url_safe_and_differ_per_addressee() -> None:
    token = unsubscribe_token(SECRET, CLIENT)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert token != unsubscribe_token(SECRET, Addressee("01ACCOUNT", "client", "01OTHER"))
    assert token != unsubscribe_token(SECRET, Addressee("01OTHERACCOUNT", "client", "01CLIENT"))


def _forged_variants() -> list[str]:
    token = unsubscribe_token(SECRET, CLIENT)
    payload, signature = token.split(".")
    other = unsubscribe_token(SECRET, Addressee("01ACCOUNT", "client", "01OTHER"))
    return [
        unsubscribe_token("another-secret", CLIENT),
        f"{other.split('.')[0]}.{signature}",
        f"{payload}.{signature[:-2]}",
        payload,
        "",
        "not a token",
        "%%%.%%%",
        token + "x",
    ]


@pytest.mark.parametrize("token", _forged_variants())
def test_forged_truncated_or_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidInput) as refusal:
        read_unsubscribe_token(SECRET, token)
    assert refusal.value.details[0].field == "token"


def test_only_clients_and_apporteurs_can_be_named() -> None:
    with pytest.raises(ValueError, match="party"):
        unsubscribe_token(SECRET, Addressee("01ACCOUNT", "account", "x"))
