"""Relais: the switchboard. Blueprints and event handlers are registered here; no rule lives here.

Every Lambda function imports this module, so each event handler imports its own module when it runs:
the API's cold start does not pay for the worker's batch and idempotency utilities, nor the reverse.
"""

from __future__ import annotations

import os
from typing import Any

from chalice.app import Chalice, CloudWatchEvent, SQSEvent

from chalicelib.api.accounts import accounts
from chalicelib.api.activity import activity
from chalicelib.api.authorizers import authorizers
from chalicelib.api.collection import collection
from chalicelib.api.dunning import dunning
from chalicelib.api.mailings import mailings
from chalicelib.api.middleware import http_middleware
from chalicelib.api.partners import partners
from chalicelib.api.portal import portal
from chalicelib.api.portal_page import portal_page
from chalicelib.api.privacy import privacy
from chalicelib.api.unsubscribe import unsubscribe
from chalicelib.api.webhooks import webhooks
from chalicelib.config import Queue, queue_name

app = Chalice(app_name="relais", configure_logs=False)
# API Gateway answers a binary body (the account's logo) only when the request's first Accept type is a
# binary type, and browsers ask for an image with image/avif or image/webp first.
app.api.binary_types.extend(["image/avif", "image/webp"])
app.register_middleware(http_middleware, "http")
app.register_blueprint(authorizers)
app.register_blueprint(accounts)
app.register_blueprint(dunning)
app.register_blueprint(partners)
app.register_blueprint(mailings)
app.register_blueprint(collection)
app.register_blueprint(portal)
app.register_blueprint(portal_page)
app.register_blueprint(unsubscribe)
app.register_blueprint(privacy)
app.register_blueprint(activity)
app.register_blueprint(webhooks)

if os.environ.get("RELAIS_STAGE") == "local":
    from chalicelib.local.routes import local

    app.register_blueprint(local)


@app.on_sqs_message(queue=queue_name(Queue.COMMUNICATIONS), batch_size=10)
def communications_worker(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.handlers import communications_worker as worker

    return worker.handle(event.to_dict(), event.context)


@app.on_sqs_message(queue=queue_name(Queue.BULK), batch_size=10)
def bulk_worker(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.handlers import bulk_worker as worker

    return worker.handle(event.to_dict(), event.context)


@app.on_sqs_message(queue=queue_name(Queue.SES_EVENTS), batch_size=10)
def ses_events(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.handlers import ses_events as handler

    return handler.handle(event.to_dict(), event.context)


@app.on_sqs_message(queue=queue_name(Queue.WEBHOOKS), batch_size=10)
def webhook_worker(event: SQSEvent) -> dict[str, Any]:
    from chalicelib.handlers import webhook_worker as worker

    return worker.handle(event.to_dict(), event.context)


@app.on_cw_event({"source": ["aws.s3"], "detail-type": ["Object Created"]})
def upload_events(event: CloudWatchEvent) -> str:
    from chalicelib.handlers import upload_events as handler

    return handler.handle(event.detail)


@app.schedule("rate(1 hour)")
def dunning_tick(event: CloudWatchEvent) -> dict[str, int]:
    from chalicelib.handlers import dunning_tick as tick

    return {"queued": tick.handle(event.time)}


@app.schedule("rate(1 minute)")
def webhook_tick(event: CloudWatchEvent) -> dict[str, int]:
    from chalicelib.handlers import webhook_tick as tick

    return {"queued": tick.handle(event.time)}
