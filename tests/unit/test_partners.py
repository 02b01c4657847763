"""Commissioning blocks and their prefill, on the domain alone (EXAMPLES.md "Commissioning prefill")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.partners import (
    Apporteur,
    Client,
    Commissioning,
    PrefilledFrom,
    deal_commissioning,
    format_rate,
    parse_rate,
)
from chalicelib.domain.recipients import CommunicationRule as R

NOW = datetime(2027, 1, 4, tzinfo=UTC)
A = Apporteur("A", "acc", "A", "a@a.fr", Commissioning(Decimal(15), R.APPORTEUR), NOW)
B = Apporteur("B", "acc", "B", "b@b.fr", Commissioning(Decimal(8), R.CLIENT), NOW)
C = Client("C", "acc", "C", "c@c.fr", "A", Commissioning(Decimal(10), R.CLIENT_AND_APPORTEUR), NOW)


def test_the_preferred_apporteur_gets_the_clients_block() -> None:
    assert deal_commissioning(None, C, A) == Commissioning(
        Decimal(10), R.CLIENT_AND_APPORTEUR, PrefilledFrom.CLIENT
    )


def test_another_apporteur_brings_his_own_block() -> None:
    assert deal_commissioning(None, C, B) == Commissioning(Decimal(8), R.CLIENT, PrefilledFrom.APPORTEUR)


def test_a_block_sent_is_kept_as_sent() -> None:
    sent = Commissioning(Decimal(12), R.APPORTEUR, PrefilledFrom.CLIENT)
    assert deal_commissioning(sent, C, B) == Commissioning(Decimal(12), R.APPORTEUR, None)


def test_without_apporteur_a_new_deal_gets_the_default_block_and_a_change_keeps_its_own() -> None:
    assert deal_commissioning(None, C, None) == Commissioning()
    current = Commissioning(Decimal(3), R.APPORTEUR, PrefilledFrom.APPORTEUR)
    assert deal_commissioning(None, C, B, current, apporteur_changed=False) == current


@pytest.mark.parametrize(
    ("text", "rate"), [("12.5", "12.5"), ("0", "0"), ("100", "100"), ("7.25", "7.25"), (" 10.50 ", "10.5")]
)
def test_rates_are_decimal_strings_from_0_to_100(text: str, rate: str) -> None:
    assert format_rate(parse_rate(text, "commission_rate")) == rate


@pytest.mark.parametrize("text", ["100.01", "-0.5", "abc", "NaN", "Infinity", "1e3", "12.34567", ""])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_rate(text, "commission_rate")


def test_a_rate_not_agreed_yet_is_none() -> None:
    assert parse_rate(None, "commission_rate") is None
