"""Automations: how fast an email is addressed and rendered (recipient resolution plus rendering of an
unpaid reminder, on one core, in this process, no AWS); the DynamoDB reads of one tick at 20,000
contracts against 1,000, both with 200 steps due (the portfolio is written straight to the table, as the
app writes it: seeding is not measured), and the workers' DynamoDB calls per step it queued, from the
step to its email settled; and what a mailing to 5,000 contracts costs per recipient, from
the send request to the last email settled (the fan-out pages, the worker, and SES's Send events).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from bench.aws_calls import _HOOK, COUNTER, Call, _expect, _open_account, _quiet
from bench.environment import (
    fast_moto_partition_queries,
    fast_moto_queues,
    fast_moto_transactions,
    local_stage,
)
from bench.figures import Figure, note
from bench.seeding import contract_item
from chalicelib import wiring
from chalicelib.local.provision import provision
from chalicelib.local.stack import REGION
from tests.support import Api, RelaisTestClient, token

READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
DUE = 200
MAILING_SIZE = 5_000
TICK = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def run() -> list[Figure]:
    if _HOOK not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(_HOOK)
    (small, _, _), (large, large_steps, send_events) = _tick_reads(1_000), _tick_reads(20_000)
    ses, dynamodb = _mailing_calls()
    return [
        Figure(
            name="render_resolve_per_second",
            value=_render_resolve_rate(),
            target=2000,
            better="higher",
            unit="emails/s",
            issue=7,
            detail="an unpaid reminder addressed by the partner rules and rendered, one core, no AWS",
        ),
        Figure(
            name="tick_read_calls_ratio_20k_vs_1k",
            value=round(large / small, 3),
            target=1.0,
            better="lower",
            unit="ratio",
            issue=7,
            detail=f"{DUE} steps due in both",
        ),
        Figure(name="tick_read_calls_1k", value=small, target=None, better="lower", unit="calls", issue=7),
        Figure(name="tick_read_calls_20k", value=large, target=None, better="lower", unit="calls", issue=7),
        Figure(
            name="step_dynamodb_calls_per_step",
            value=round(_count(large_steps, "dynamodb") / DUE, 2),
            target=5,
            better="lower",
            unit="calls",
            issue=17,
            detail=f"from the step to its email settled, over {DUE} unpaid calls: {_per_step(large_steps)}",
        ),
        Figure(
            name="send_event_dynamodb_calls_per_email",
            value=round(_count(send_events, "dynamodb") / DUE, 2),
            target=None,
            better="lower",
            unit="calls",
            issue=17,
            detail=(
                "SES's Send event of each of those emails, checked (one BatchGetItem per batch of "
                "10) against the emails still sending, in case a worker died after SES accepted one"
            ),
        ),
        Figure(
            name="mailing_ses_calls_per_recipient",
            value=round(ses / MAILING_SIZE, 3),
            target=1.0,
            better="lower",
            unit="calls",
            issue=7,
            detail=f"a mailing to {MAILING_SIZE:,} contracts",
        ),
        Figure(
            name="mailing_dynamodb_calls_per_recipient",
            value=round(dynamodb / MAILING_SIZE, 3),
            target=3,
            better="lower",
            unit="calls",
            issue=7,
            detail=f"a mailing to {MAILING_SIZE:,} contracts, from the send request to the last settled",
        ),
    ]


def _count(calls: Counter[Call], service: str, operations: set[str] | None = None) -> int:
    return sum(
        n
        for (s, operation), n in calls.items()
        if s == service and (operations is None or operation in operations)
    )


def _fresh_account() -> tuple[Api, str, str]:
    wiring.reset()
    provision(wiring.container().client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
    platform = Api(RelaisTestClient(), token("platform_admin"))
    account_id = _open_account(platform, "premium")
    admin = platform.as_(token("admin", account_id))
    client_id = _expect(admin.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}), 201)["id"]
    return admin, account_id, client_id


def _seed_contracts(account_id: str, client_id: str, count: int, with_installments: bool) -> list[str]:
    """`count` contracts (and one installment each, the first DUE of them due at TICK), written in
    batches of 25 as the repositories would write them."""
    from chalicelib.adapters.dynamodb.models import PartnerItem, ScheduledItem
    from chalicelib.adapters.dynamodb.scheduled import _item
    from chalicelib.domain.ids import new_ulid
    from chalicelib.domain.installments import Installment, Money
    from chalicelib.domain.legal_time import sending_moment
    from chalicelib.domain.partners import ContractParties

    ids = []
    with PartnerItem.batch_write() as contracts, ScheduledItem.batch_write() as installments:
        for n in range(count):
            contract_id, item = contract_item(account_id, client_id, f"K{n}", None, TICK)
            ids.append(contract_id)
            contracts.save(item)
            if not with_installments:
                continue
            # The call goes 15 days before the due date: due now for the first DUE, in months for the rest.
            due_date = TICK.date() + timedelta(days=15 if n < DUE else 200)
            installment = Installment(new_ulid(), contract_id, due_date, Money(Decimal("84.20")))
            call_at = sending_moment(due_date - timedelta(days=15))
            installments.save(
                _item(account_id, installment, 1, call_at, ContractParties(client_id, None, None))
            )
    return ids


def _per_step(calls: Counter[Call]) -> str:
    """The DynamoDB calls of the steps by operation, per step."""
    per_operation = {operation: n for (service, operation), n in calls.items() if service == "dynamodb"}
    return " ".join(
        f"{operation}×{n / DUE:g}" for operation, n in sorted(per_operation.items(), key=lambda on: -on[1])
    )


def _tick_reads(portfolio: int) -> tuple[int, Counter[Call], Counter[Call]]:
    """The tick's DynamoDB reads, every call of the workers from the steps it queued to their emails
    settled, then the calls that handle the emails' Send events and the events' fan-out."""
    from chalicelib.handlers import dunning_tick
    from chalicelib.local.outbox import sent_messages
    from chalicelib.local.pumps import drain

    with (
        local_stage(),
        _quiet(),
        mock_aws(),
        fast_moto_transactions(),
        fast_moto_partition_queries(),
        fast_moto_queues(),
    ):
        _, account_id, client_id = _fresh_account()
        drain()  # the account's welcome email: not a step's
        started = time.perf_counter()
        _seed_contracts(account_id, client_id, portfolio, with_installments=True)
        seeded = time.perf_counter()
        COUNTER.take()
        queued = dunning_tick.run(TICK)
        reads = _count(COUNTER.take(), "dynamodb", READS)
        ticked = time.perf_counter()
        with _left_queued("webhook_worker", "ses_events"):
            drain()
        steps = COUNTER.take()
        with _left_queued("webhook_worker"):
            drain()
        send_events = COUNTER.take()
        calls = len([m for m in sent_messages(REGION) if m["kind"] == "unpaid_call"])
        wiring.reset()
    stepped = time.perf_counter() - ticked
    note(
        f"Automations: {portfolio:,} contracts and installments seeded in {seeded - started:.1f} s, "
        f"the tick ran in {ticked - seeded:.1f} s on moto, its {DUE} steps in {stepped:.1f} s"
    )
    if queued != DUE or calls != DUE:
        raise RuntimeError(
            f"the tick queued {queued} messages and {calls} calls went out, not the {DUE} steps due"
        )
    return reads, steps, send_events


@contextmanager
def _left_queued(*functions: str) -> Iterator[None]:
    """`drain()` without these functions: what they handle (SES's Send events, checked by `ses_events`
    against the emails still sending; the fan-out of the events to webhooks, which
    webhook_dynamodb_calls_per_delivery measures) comes after the email is settled."""
    from chalicelib.local import pumps

    every = pumps._handlers
    pumps._handlers = lambda: [h for h in every() if h[1] not in functions]
    try:
        yield
    finally:
        pumps._handlers = every


def _mailing_calls() -> tuple[int, int]:
    from chalicelib.local.pumps import drain

    with local_stage(), _quiet(), mock_aws(), fast_moto_transactions(), fast_moto_queues():
        admin, account_id, client_id = _fresh_account()
        _seed_contracts(account_id, client_id, MAILING_SIZE, with_installments=False)
        body = {
            "name": "Offre",
            "subject": "Du nouveau pour {{ contract.reference }}",
            "body": "Bonjour {{ recipient.name }},\n\nNotre offre est là.",
            "audience": {"entity": "contracts"},
        }
        mailing = _expect(admin.post("/mailings", body), 201)
        drain()
        COUNTER.take()
        _expect(admin.post(f"/mailings/{mailing['id']}/send"), 202)
        drain()
        calls = COUNTER.take()
        done = _expect(admin.get(f"/mailings/{mailing['id']}"), 200)
        wiring.reset()
    if (done["status"], done["sent"]) != ("sent", MAILING_SIZE):
        raise RuntimeError(f"the mailing did not go out: {done}")
    return _count(calls, "sesv2"), _count(calls, "dynamodb")


def _render_resolve_rate() -> float:
    from chalicelib.domain.communications import CommunicationKind
    from chalicelib.domain.recipients import CommunicationRule, Party, RuleHolder, resolve_recipients
    from chalicelib.domain.templates import render_kind

    client, apporteur = (
        Party("C", "Jean Dupont", "jean@dupont.fr"),
        Party("A", "Courtage Ouest", "a@ouest.fr"),
    )
    kind = CommunicationKind.UNPAID_REMINDER
    rounds, started = 0, time.perf_counter()
    while time.perf_counter() - started < 2.0:
        resolution = resolve_recipients(
            rules_in_force=True,
            kind=kind,
            client=client,
            client_rules=RuleHolder("A", CommunicationRule.APPORTEUR),
            contract=RuleHolder("A", CommunicationRule.CLIENT_AND_APPORTEUR),
            apporteur=apporteur,
        )
        render_kind(
            kind,
            {
                "account.name": "Cabinet Martin",
                "client.name": client.name,
                "recipient.name": resolution.to[0].name,
                "recipient.party": resolution.to[0].party,
                "contract.reference": f"HAB-{rounds}",
                "installment.amount": "84,20\u00a0€",
                "installment.due_date": "01/03/2027",
            },
        )
        rounds += 1
    return round(rounds / (time.perf_counter() - started))
