"""What the webhook store promises, checked against the fake and DynamoDB alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.communications import Communication, CommunicationKind, Recipient
from chalicelib.domain.errors import Conflict
from chalicelib.domain.webhooks import (
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    DisabledReason,
    Endpoint,
    after_attempt,
    new_secret,
)
from chalicelib.services.ports import RecipientsSuppressed
from tests.fakes import FakeSuppressionList, FakeWebhookStore

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "dynamodb"])
def webhooks(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "fake":
        yield FakeWebhookStore()
        return
    yield request.getfixturevalue("aws").webhooks


def _endpoint(number: int = 1, account_id: str = "acc_1") -> Endpoint:
    return Endpoint(
        account_id, f"whk_{number:02d}", "https://crm.example/x", ("*",), new_secret(), NOW, "CRM"
    )


def _delivery(delivery_id: str = "dlv_01") -> Delivery:
    return Delivery("acc_1", "whk_01", delivery_id, "evt_1", "dossier.completed", {"id": "evt_1"})


def test_an_endpoint_reads_back_whole_for_its_account_only(webhooks: Any) -> None:
    endpoint = _endpoint()
    webhooks.add(endpoint)
    assert webhooks.get("acc_1", "whk_01") == endpoint
    assert webhooks.get("acc_2", "whk_01") is None
    assert webhooks.all("acc_1") == [endpoint]


def test_an_account_holds_20_endpoints_and_a_deleted_one_frees_its_place(webhooks: Any) -> None:
    for number in range(20):
        webhooks.add(_endpoint(number))
    with pytest.raises(Conflict):
        webhooks.add(_endpoint(20))
    webhooks.add(_endpoint(1, account_id="acc_2"))
    assert webhooks.remove("acc_1", "whk_00")
    assert not webhooks.remove("acc_1", "whk_00")
    webhooks.add(_endpoint(20))
    assert len(webhooks.all("acc_1")) == 20


def test_a_change_writes_only_its_fields_so_a_stale_patch_keeps_a_rotated_secret(webhooks: Any) -> None:
    endpoint = _endpoint()
    webhooks.add(endpoint)
    rotated = endpoint.rotated(new_secret(), NOW)
    assert webhooks.change(rotated, frozenset({"secret", "previous_secret", "previous_secret_expires_at"}))
    assert webhooks.change(replace(endpoint, description="Nouveau CRM"), frozenset({"description"}))
    stored = webhooks.get("acc_1", "whk_01")
    assert (stored.secret, stored.previous_secret, stored.description) == (
        rotated.secret,
        endpoint.secret,
        "Nouveau CRM",
    )
    assert not webhooks.change(_endpoint(7), frozenset({"description"}))


def test_each_attempt_is_recorded_once_after_the_one_it_follows(webhooks: Any) -> None:
    webhooks.add(_endpoint())
    new = _delivery()
    first = after_attempt(new, AttemptOutcome(500, 5, None), NOW)
    assert webhooks.record(new, first)
    assert not webhooks.record(new, first)  # a duplicate first attempt
    second = after_attempt(first, AttemptOutcome(200, 5, None), NOW + timedelta(seconds=5))
    assert webhooks.record(first, second)
    assert not webhooks.record(first, second)
    assert webhooks.for_attempt("acc_1", "whk_01", "dlv_01") == (webhooks.get("acc_1", "whk_01"), second)


def test_a_waiting_retry_is_due_once_its_time_has_come_and_leaves_when_settled(webhooks: Any) -> None:
    webhooks.add(_endpoint())
    new = _delivery()
    failed = after_attempt(new, AttemptOutcome(None, 10_000, "timeout"), NOW)
    webhooks.record(new, failed)
    assert webhooks.due_deliveries(NOW + timedelta(seconds=4), 10) == []
    assert webhooks.due_deliveries(NOW + timedelta(seconds=5), 10) == [("acc_1", "whk_01", "dlv_01", 2)]
    succeeded = after_attempt(failed, AttemptOutcome(204, 5, None), NOW + timedelta(seconds=5))
    webhooks.record(failed, succeeded)
    assert webhooks.due_deliveries(NOW + timedelta(days=9), 10) == []


def test_a_tick_reads_a_bounded_page_of_each_shard_the_oldest_first_and_the_rest_later(
    webhooks: Any,
) -> None:
    from chalicelib.adapters.dynamodb.webhooks import _shard

    webhooks.add(_endpoint())
    same_shard = [i for i in (f"dlv_{n:02d}" for n in range(100)) if _shard(i) == _shard("dlv_00")][:3]
    failed = []
    for minute, delivery_id in enumerate(same_shard):
        new = _delivery(delivery_id)
        failed.append(after_attempt(new, AttemptOutcome(500, 5, None), NOW + timedelta(minutes=minute)))
        webhooks.record(new, failed[-1])
    later = NOW + timedelta(hours=1)
    assert [d for _, _, d, _ in webhooks.due_deliveries(later, 2)] == same_shard[:2]
    for before in failed[:2]:
        webhooks.record(before, after_attempt(before, AttemptOutcome(200, 5, None), later))
    assert webhooks.due_deliveries(later, 2) == [("acc_1", "whk_01", same_shard[2], 2)]


def test_the_failure_clock_moves_with_the_outcome_and_disabling_happens_once(webhooks: Any) -> None:
    endpoint = _endpoint()
    webhooks.add(endpoint)
    first, second = _delivery("dlv_01"), _delivery("dlv_02")
    failing = replace(endpoint, failing_since=NOW)
    assert webhooks.record(first, after_attempt(first, AttemptOutcome(500, 5, None), NOW), failing)
    assert webhooks.get("acc_1", "whk_01").failing_since == NOW
    disabled = replace(failing, enabled=False, disabled_reason=DisabledReason.GONE)
    gone = AttemptOutcome(410, 5, None)
    assert webhooks.record(second, after_attempt(second, gone, NOW), disabled)
    stored = webhooks.get("acc_1", "whk_01")
    assert (stored.enabled, stored.disabled_reason) == (False, DisabledReason.GONE)
    third = _delivery("dlv_03")
    assert not webhooks.record(third, after_attempt(third, gone, NOW), disabled)


def test_deliveries_list_newest_first(webhooks: Any) -> None:
    webhooks.add(_endpoint())
    for delivery_id in ("dlv_01", "dlv_02", "dlv_03"):
        new = _delivery(delivery_id)
        webhooks.record(new, after_attempt(new, AttemptOutcome(200, 1, None), NOW))
    found, _ = webhooks.deliveries("acc_1", "whk_01", 2, None)
    assert [d.id for d in found] == ["dlv_03", "dlv_02"]
    assert all(d.status is DeliveryStatus.SUCCEEDED for d in found)


@pytest.fixture(params=["fake", "dynamodb"])
def screened_webhooks(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(webhook store, suppression list) of one kind, the store screening its notices against the list."""
    if request.param == "fake":
        suppressions = FakeSuppressionList()
        return FakeWebhookStore(suppressions), suppressions
    services = request.getfixturevalue("aws")
    return services.webhooks, services.suppressions


def test_disabling_with_a_notice_to_a_suppressed_address_writes_nothing_and_names_it(
    screened_webhooks: tuple[Any, Any],
) -> None:
    webhooks, suppressions = screened_webhooks
    endpoint = _endpoint()
    webhooks.add(endpoint)
    suppressions.add("acc_1", "contact@martin.fr", "complaint", None, NOW)
    notice = Communication(
        id="cm_notice",
        account_id="acc_1",
        kind=CommunicationKind.WEBHOOK_DISABLED,
        sender_name="Relais",
        reply_to=None,
        to=(Recipient("Cabinet Martin", "contact@martin.fr", "account"),),
        created_at=NOW,
    )
    disabled = replace(endpoint, enabled=False, disabled_reason=DisabledReason.GONE)
    delivery = _delivery()
    gone = after_attempt(delivery, AttemptOutcome(410, 5, None), NOW)
    with pytest.raises(RecipientsSuppressed) as refused:
        webhooks.record(delivery, gone, disabled, notice, NOW)
    assert refused.value.addresses == {"contact@martin.fr"}
    assert webhooks.get("acc_1", "whk_01").enabled is True
    skipped = notice.skipped("every recipient is on the suppression list (bounced or complained)")
    assert webhooks.record(delivery, gone, disabled, skipped, NOW)
    assert webhooks.get("acc_1", "whk_01").enabled is False
