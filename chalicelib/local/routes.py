"""Routes of the local stage only (registered by app.py when RELAIS_STAGE is `local`, never deployed)."""

from __future__ import annotations

from typing import Any

from chalice.app import Response

from chalicelib.api.requests import StrictBody, Timestamp, parse_body
from chalicelib.api.routing import ApiBlueprint
from chalicelib.wiring import container

local = ApiBlueprint(__name__)


class TickBody(StrictBody):
    time: Timestamp | None = None
    """Left out: now."""


@local.route("/_local/outbox", methods=["GET"])
def show_outbox() -> dict[str, Any]:
    from chalicelib.local import outbox

    return {"messages": outbox.sent_messages(container().settings.region)}


@local.route("/_local/outbox.html", methods=["GET"])
def show_outbox_page() -> Response:
    from chalicelib.local import outbox

    page = outbox.outbox_page(outbox.sent_messages(container().settings.region))
    return Response(page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@local.route("/_local/tick", methods=["POST"])
def run_tick() -> dict[str, Any]:
    """Both scheduled functions, `dunning_tick` and `webhook_tick`, as of `time`, then every queue drained."""
    from chalicelib.handlers import dunning_tick, webhook_tick
    from chalicelib.local import pumps

    request = local.current_request
    body = parse_body(request, TickBody) if (request.raw_body or b"").strip() else TickBody()
    as_of = body.time.replace(microsecond=0) if body.time else container().now()
    queued = dunning_tick.run(as_of) + webhook_tick.run(as_of)
    return {"queued": queued, "processed": pumps.drain()}


@local.route("/_local/drain", methods=["POST"])
def drain_queues() -> dict[str, Any]:
    from chalicelib.local import pumps

    return {"processed": pumps.drain()}


@local.route("/_local/letters", methods=["GET"])
def show_letters() -> dict[str, Any]:
    """The letters the simulated registered-mail provider took, oldest first, each with a link to its PDF."""
    from chalicelib.adapters.simulated_registered_mail import SimulatedRegisteredMail

    services = container()
    provider = services.registered_mail
    taken = provider.letters() if isinstance(provider, SimulatedRegisteredMail) else ()
    return {
        "letters": [
            {
                "id": t.letter.letter_id,
                "account_id": t.letter.account_id,
                "contract_id": t.letter.contract_id,
                "installment_id": t.letter.installment_id,
                "recipient": {
                    "name": t.letter.recipient_name,
                    "lines": list(t.letter.recipient_address.envelope_lines(t.letter.recipient_name)),
                },
                "pdf_url": services.documents.letter_url(t.letter.document_key, f"{t.letter.letter_id}.pdf")
                if t.letter.document_key
                else None,
                "sent_on": t.tracking.sent_on.isoformat() if t.tracking.sent_on else None,
                "tracking_number": t.tracking.tracking_number,
                "status": t.tracking.status.value,
            }
            for t in taken
        ]
    }
