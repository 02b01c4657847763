"""Webhooks (issue 16): the DynamoDB calls of one delivery, and the writes a change costs per subscribed
endpoint (none: the event is written once, in the change's transaction, and the worker fans it out).

Both figures wait for the webhook worker, which is not on this branch: until it lands they are listed
with their targets and no value, so that the table shows what is still to be measured.
"""

from __future__ import annotations

from bench.figures import Figure

NOT_YET = "not measured: no webhook worker on this branch yet"


def run() -> list[Figure]:
    return [
        Figure(
            name="webhook_dynamodb_calls_per_delivery",
            value=None,
            target=2,
            better="lower",
            unit="calls",
            issue=16,
            detail=NOT_YET,
        ),
        Figure(
            name="webhook_extra_writes_per_endpoint",
            value=None,
            target=0,
            better="lower",
            unit="writes",
            issue=16,
            detail=NOT_YET,
        ),
    ]
