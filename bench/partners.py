"""Partner communications: DynamoDB calls of the recipient rules, of a prefilled contract and of a
filtered page, and what a bulk change of 10,000 contracts costs through `bulk_worker`.

Calls are counted by the botocore hook of `bench.aws_calls`; each API figure is the warm call (the second
in the same container). The bulk figures count every write call of the worker per contract changed, and
every SQS call from the request to the last chunk (the API's batches and the event source's receives and
deletes, played by the local pump).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from bench.aws_calls import _HOOK, COUNTER, Call, _expect, _open_account, _quiet
from bench.environment import local_stage
from bench.figures import Figure
from bench.seeding import contract_item
from chalicelib import wiring
from chalicelib.local.provision import provision
from chalicelib.local.stack import REGION
from tests.support import Api, RelaisTestClient, token

BULK_SIZE = 10_000
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def run() -> list[Figure]:
    if _HOOK not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(_HOOK)
    with local_stage(), _quiet(), mock_aws():
        wiring.reset()
        provision(wiring.container().client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
        figures = _measure(RelaisTestClient())
        wiring.reset()
    return figures


def _dynamodb(calls: Counter[Call]) -> int:
    return sum(count for (service, _), count in calls.items() if service == "dynamodb")


def _twice(action: Any) -> int:
    """DynamoDB calls of the second of two runs (the first warms the container)."""
    action()
    COUNTER.take()
    action()
    return _dynamodb(COUNTER.take())


def _measure(client: RelaisTestClient) -> list[Figure]:
    platform = Api(client, token("platform_admin"))
    account_id = _open_account(platform, "premium")
    admin = platform.as_(token("admin", account_id))
    _expect(admin.patch("/account/settings", {"partner_communications_enabled": True}), 200)
    a = _expect(admin.post("/apporteurs", {"name": "A", "email": "a@a.fr"}), 201)["id"]
    c = _expect(admin.post("/clients", {"name": "C", "email": "c@c.fr", "preferred_apporteur_id": a}), 201)[
        "id"
    ]
    k = _expect(admin.post("/contracts", {"client_id": c, "reference": "K", "apporteur_id": a}), 201)["id"]

    recipients = _twice(lambda: _expect(admin.get(f"/clients/{c}/recipients?contract_id={k}"), 200))
    create = _twice(
        lambda: _expect(admin.post("/contracts", {"client_id": c, "reference": "K", "apporteur_id": a}), 201)
    )
    filtered = _twice(lambda: _expect(admin.get("/contracts?communication_rule=client&limit=50"), 200))
    write_calls, sqs_calls = _bulk(admin, account_id, a, c)
    return [
        Figure(
            name="recipients_dynamodb_calls",
            value=recipients,
            target=2,
            better="lower",
            unit="calls",
            issue=6,
        ),
        Figure(
            name="contract_create_dynamodb_calls",
            value=create,
            target=3,
            better="lower",
            unit="calls",
            issue=6,
        ),
        Figure(
            name="contract_filter_page_dynamodb_calls",
            value=filtered,
            target=1,
            better="lower",
            unit="calls",
            issue=6,
        ),
        Figure(
            name="bulk_write_calls_per_item",
            value=round(write_calls / BULK_SIZE, 4),
            target=1.05,
            better="lower",
            unit="calls/item",
            issue=6,
            detail=f"{write_calls} DynamoDB writes for {BULK_SIZE:,} contracts",
        ),
        Figure(name="bulk_sqs_calls", value=sqs_calls, target=150, better="lower", unit="calls", issue=6),
    ]


def _bulk(admin: Api, account_id: str, apporteur_id: str, client_id: str) -> tuple[int, int]:
    """10,000 contracts written straight to the table (setting up is not measured), then changed."""
    from datetime import UTC, datetime

    from chalicelib.adapters.dynamodb.models import PartnerItem
    from chalicelib.local.pumps import drain

    now = datetime.now(UTC)
    ids = []
    with PartnerItem.batch_write() as batch:
        for n in range(BULK_SIZE):
            record_id, item = contract_item(account_id, client_id, f"B{n}", apporteur_id, now)
            ids.append(record_id)
            batch.save(item)
    COUNTER.take()
    job = _expect(
        admin.post("/contracts/bulk-updates", {"ids": ids, "set": {"communication_rule": "apporteur"}}), 202
    )
    drain()
    calls = COUNTER.take()
    done = _expect(admin.get(f"/jobs/{job['job_id']}"), 200)
    if (done["status"], done["succeeded"]) != ("succeeded", BULK_SIZE):
        raise RuntimeError(
            f"the bulk change did not succeed: {done['status']}, {done['succeeded']} succeeded"
        )
    writes = sum(
        count
        for (service, operation), count in calls.items()
        if service == "dynamodb" and operation in WRITES
    )
    sqs = sum(count for (service, _), count in calls.items() if service == "sqs")
    return writes, sqs
