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
    from chalicelib.handlers import dunning_tick
    from chalicelib.local import pumps

    request = local.current_request
    body = parse_body(request, TickBody) if (request.raw_body or b"").strip() else TickBody()
    as_of = body.time.replace(microsecond=0) if body.time else container().now()
    queued = dunning_tick.run(as_of)
    return {"queued": queued, "processed": pumps.drain()}


@local.route("/_local/drain", methods=["POST"])
def drain_queues() -> dict[str, Any]:
    from chalicelib.local import pumps

    return {"processed": pumps.drain()}
