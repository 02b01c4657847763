"""Webhook rules: the secret, the Standard Webhooks signature, who wants what, the retries, disabling."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.events import SUBSCRIBABLE
from chalicelib.domain.webhooks import (
    MAX_ATTEMPTS,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    DisabledReason,
    Endpoint,
    after_attempt,
    checked_description,
    checked_events,
    delivery_id,
    disable_reason,
    new_secret,
    retry_delay,
    secret_key,
    signature,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _endpoint(**changes: object) -> Endpoint:
    base = Endpoint("acc_1", "whk_1", "https://crm.example/hooks", ("dossier.completed",), new_secret(), NOW)
    return Endpoint(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_new_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


@pytest.mark.parametrize("size", [24, 64])
def test_secrets_of_24_to_64_bytes_are_accepted(size: int) -> None:
    assert len(secret_key("whsec_" + base64.b64encode(bytes(size)).decode())) == size


@pytest.mark.parametrize(
    "secret", ["whsec_" + base64.b64encode(bytes(23)).decode(), "whsec_!!!", "sk_" + "A" * 44]
)
def test_a_short_undecodable_or_unprefixed_secret_is_refused(secret: str) -> None:
    with pytest.raises(InvalidInput):
        secret_key(secret)


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body_in_base64() -> None:
    secret = new_secret()
    body = b'{"type":"dossier.completed"}'
    expected = hmac.new(secret_key(secret), b"evt_1.1700000000." + body, hashlib.sha256).digest()
    assert signature([secret], "evt_1", 1700000000, body) == "v1," + base64.b64encode(expected).decode()


def test_two_secrets_give_two_space_separated_signatures() -> None:
    first, second = new_secret(), new_secret()
    both = signature([first, second], "evt_1", 1, b"{}")
    assert both.split(" ") == [signature([first], "evt_1", 1, b"{}"), signature([second], "evt_1", 1, b"{}")]


def test_after_a_rotation_the_previous_secret_signs_for_24_hours() -> None:
    endpoint = _endpoint()
    rotated = endpoint.rotated(new_secret(), NOW)
    assert rotated.signing_secrets(NOW + timedelta(hours=23)) == (rotated.secret, endpoint.secret)
    assert rotated.signing_secrets(NOW + timedelta(hours=24)) == (rotated.secret,)


def test_an_endpoint_wants_its_types_or_everything_with_a_star_and_nothing_once_disabled() -> None:
    assert _endpoint().wants("dossier.completed", NOW)
    assert not _endpoint().wants("document.uploaded", NOW)
    assert _endpoint(events=("*",)).wants("contract.suspended", NOW)
    assert not _endpoint(events=("*",), enabled=False).wants("contract.suspended", NOW)


def test_an_endpoint_takes_no_event_that_happened_before_it_existed() -> None:
    created = _endpoint(events=("*",), created_at=NOW.replace(microsecond=0))
    assert not created.wants("communication.sent", NOW.replace(microsecond=0) - timedelta(seconds=1))
    assert created.wants("communication.sent", NOW.replace(microsecond=0))


def test_event_lists_are_known_types_or_a_star_that_means_all() -> None:
    assert checked_events(["*"]) == ("*",)
    assert checked_events(["dossier.created", "*"]) == ("*",)
    assert checked_events(["dossier.created", "dossier.created"]) == ("dossier.created",)
    for wrong in ([], ["dossier.exploded"], ["webhook.test"]):
        with pytest.raises(InvalidInput) as refused:
            checked_events(wrong)
        assert refused.value.details[0].field == "events"


def test_a_description_takes_200_characters_at_most() -> None:
    assert checked_description("x" * 200) == "x" * 200
    with pytest.raises(InvalidInput):
        checked_description("x" * 201)


def test_retries_wait_5_s_5_min_30_min_2_h_5_h_10_h_10_h_then_give_up() -> None:
    waits = [retry_delay(n) for n in range(1, MAX_ATTEMPTS + 1)]
    assert waits == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
        None,
    ]


def _delivery() -> Delivery:
    return Delivery("acc_1", "whk_1", "dlv_1", "evt_1", "dossier.completed", {})


def test_a_failed_attempt_schedules_the_next_and_the_eighth_fails_the_delivery() -> None:
    failing = AttemptOutcome(500, 12, None)
    delivery = after_attempt(_delivery(), failing, NOW)
    assert (delivery.attempt, delivery.status, delivery.next_attempt_at) == (
        1,
        DeliveryStatus.PENDING,
        NOW + timedelta(seconds=5),
    )
    assert delivery.last_error == "HTTP 500"
    for _ in range(MAX_ATTEMPTS - 1):
        delivery = after_attempt(delivery, AttemptOutcome(None, 10_000, "timeout"), NOW)
    assert (delivery.attempt, delivery.status, delivery.next_attempt_at) == (8, DeliveryStatus.FAILED, None)
    assert delivery.last_error == "timeout"


def test_a_2xx_answer_succeeds_and_a_redirect_does_not() -> None:
    assert after_attempt(_delivery(), AttemptOutcome(204, 3, None), NOW).status is DeliveryStatus.SUCCEEDED
    assert after_attempt(_delivery(), AttemptOutcome(302, 3, None), NOW).status is DeliveryStatus.PENDING


def test_410_disables_at_once_and_failures_after_five_days_do() -> None:
    assert disable_reason(AttemptOutcome(410, 1, None), None, NOW) is DisabledReason.GONE
    failure = AttemptOutcome(500, 1, None)
    assert disable_reason(failure, NOW - timedelta(days=4, hours=23), NOW) is None
    assert disable_reason(failure, NOW - timedelta(days=5), NOW) is DisabledReason.FAILING
    assert disable_reason(AttemptOutcome(200, 1, None), NOW - timedelta(days=9), NOW) is None


def test_re_enabling_forgets_the_failures_that_disabled_it() -> None:
    disabled = _endpoint(enabled=False, failing_since=NOW, disabled_reason=DisabledReason.FAILING)
    enabled = disabled.with_enabled(True)
    assert (enabled.enabled, enabled.failing_since, enabled.disabled_reason) == (True, None, None)


def test_one_event_makes_one_delivery_per_endpoint_sorted_by_the_events_moment() -> None:
    assert delivery_id("evt_1", "whk_1", NOW) == delivery_id("evt_1", "whk_1", NOW)
    assert delivery_id("evt_1", "whk_1", NOW) != delivery_id("evt_1", "whk_2", NOW)
    assert delivery_id("evt_1", "whk_1", NOW) < delivery_id("evt_2", "whk_1", NOW + timedelta(seconds=1))


def test_openapi_offers_exactly_the_types_an_endpoint_may_ask_for() -> None:
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
    offered = spec["components"]["schemas"]["WebhookEvents"]["items"]["enum"]
    assert set(offered) == SUBSCRIBABLE | {"*"}
