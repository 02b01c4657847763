"""The communications worker's AWS calls for one email of every communication kind (issue 17): the
target is 3, the claim, the SES call and the settling write; anything more is paid on every email sent.

The welcome is the one the app queues when it opens an account; one communication of each other kind is
written to the table as the app queues it (the kind's default template and the variables of its golden
sample in tests/golden/emails.py; a dossier email names a real dossier's participant, a mailing's a real
mailing). Then `communications_worker` is invoked with the one SQS record Lambda would hand it; Lambda's
own receive and delete are not the worker's. Each kind runs twice, cold then warm in the same container
(see `bench.aws_calls`), and the warm count is the figure.

The worker sends through the deployed stage's mailer: the local stage wraps it in SES's mailbox simulator,
which posts each Send event to an SQS queue, as EventBridge does outside the worker in AWS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from bench.aws_calls import _HOOK, Measure, _calls, _expect, _measure, _open_account, _quiet
from bench.environment import local_stage
from bench.figures import Figure
from chalicelib import wiring
from chalicelib.config import Queue, queue_name
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    Recipient,
    communication_id,
)
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.procedures import MAIN
from chalicelib.local.outbox import sent_messages
from chalicelib.local.provision import provision
from chalicelib.local.stack import REGION
from chalicelib.services.communications import DeliveryRequest
from tests.golden.emails import variants
from tests.support import Api, RelaisTestClient, token

TARGET = 3
K = CommunicationKind
_DOSSIER_KINDS = {
    K.DOSSIER_CREATED,
    K.CONTRIBUTOR_INVITED,
    K.DOCUMENT_REJECTED,
    K.ROLE_FINISHED,
    K.DEADLINE_APPROACHING,
}

Sample = Callable[[], Communication]
"""A new queued communication of one kind, each call another (the cold run and the warm one)."""


def run() -> list[Figure]:
    if _HOOK not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(_HOOK)
    with local_stage(), _quiet(), mock_aws():
        wiring.reset()
        provision(wiring.container().client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
        client = RelaisTestClient()
        samples = _samples(Api(client, token("platform_admin")))
        measures = {
            kind: _measure(kind.value, _delivery(client, kind, sample)) for kind, sample in samples.items()
        }
        wiring.reset()
    return [_figure(kind, measures.get(kind)) for kind in CommunicationKind]


def _figure(kind: CommunicationKind, measure: Measure | None) -> Figure:
    name = f"worker_aws_calls_per_email.{kind.value}"
    if measure is None:
        return Figure(
            name=name,
            value=None,
            target=TARGET,
            better="lower",
            unit="calls",
            issue=17,
            detail="not measured: bench/worker_calls.py has no sample email of this kind",
        )
    return Figure(
        name=name,
        value=sum(measure.warm.values()),
        target=TARGET,
        better="lower",
        unit="calls",
        issue=17,
        detail=_calls(measure.warm),
    )


def _samples(platform: Api) -> dict[CommunicationKind, Sample]:
    """A sample communication for each kind, addressed to one person (a mailing's to its client only)."""
    account_id = _open_account(platform, "platinum")
    admin = platform.as_(token("admin", account_id))
    client_id = _expect(admin.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}), 201)["id"]
    participant = _dossier_participant(admin, account_id)
    mailing_id = _expect(
        admin.post(
            "/mailings",
            {"name": "Offre", "subject": "Du nouveau", "body": "Bonjour", "audience": {"entity": "clients"}},
        ),
        201,
    )["id"]
    golden = {kind: variables for _, kind, variables in variants()}  # the last variant of each kind

    def sample(kind: CommunicationKind) -> Sample:
        def new() -> Communication:
            if kind is K.ACCOUNT_WELCOME:
                return _welcome_of_a_new_account(platform)
            base = Communication(
                id=new_ulid(),
                account_id=account_id,
                kind=kind,
                sender_name="Cabinet Banc d’Essai",
                reply_to="contact@banc.example",
                to=(Recipient("Jean Dupont", "jean@dupont.fr", "client"),),
                created_at=datetime.now(UTC).replace(microsecond=0),
                variables=golden[kind],
            )
            if kind in _DOSSIER_KINDS:
                return replace(
                    base,
                    to=(Recipient("Jean Dupont", "jean@dupont.fr", "recipient"),),
                    portal_participant=participant,
                )
            if kind is K.MAILING:
                return replace(
                    base, client_id=client_id, mailing_id=mailing_id, party_ids={"client": client_id}
                )
            return replace(base, client_id=client_id)

        return new

    return {kind: sample(kind) for kind in CommunicationKind if kind in golden}


def _welcome_of_a_new_account(platform: Api) -> Communication:
    """The welcome the app queued when it opened an account, as it decided it (not a copy of that)."""
    account_id = _open_account(platform, "essential")
    welcome_id = communication_id(account_id, f"account:{account_id}", K.ACCOUNT_WELCOME.value)
    welcome = wiring.container().communications.get(account_id, welcome_id)
    if welcome is None:
        raise RuntimeError("opening an account queued no welcome email")
    return welcome


def _dossier_participant(admin: Api, account_id: str) -> str:
    """The main recipient of a new dossier, as a dossier email names him
    (`dossier/role/participant/generation`)."""
    procedure = _expect(admin.post("/procedures", {"name": "Location"}), 201)["id"]
    body = {"procedure_id": procedure, "recipient": {"name": "Jean Dupont", "email": "jean@dupont.fr"}}
    dossier_id = _expect(admin.post("/dossiers", body), 201)["id"]
    found = wiring.container().dossiers.get(account_id, dossier_id)
    if found is None:
        raise RuntimeError("the dossier just created cannot be read back")
    dossier = found[0]
    _, _, role_id = dossier.participant_name(MAIN)
    return f"{dossier.id}/{role_id}/{MAIN}/{dossier.generation_of(MAIN)}"


def _delivery(client: RelaisTestClient, kind: CommunicationKind, sample: Sample) -> Callable[[int], None]:
    """Writes two queued emails of `kind` (uncounted: the app wrote them when it decided them), and returns
    the delivery of one of them by the worker."""
    emails = [sample(), sample()]
    for email in emails:
        wiring.container().communications.add(email, retry_at=email.created_at)

    def deliver(attempt: int) -> None:
        _send_as_deployed(wiring.container())
        sent_before = len(sent_messages(REGION))
        answer = client.lambda_.invoke("communications_worker", _event(emails[attempt])).payload
        sent = [message["kind"] for message in sent_messages(REGION)[sent_before:]]
        if answer.get("batchItemFailures") or sent != [kind.value]:
            raise RuntimeError(f"the worker did not send one {kind.value} email: {answer}, sent {sent}")

    return deliver


def _send_as_deployed(services: wiring.Container) -> None:
    """The container's mailer without the local stage's mailbox simulator (see the module's docstring)."""
    from chalicelib.adapters.ses import SesMailer

    if not isinstance(services.mailer, SesMailer):
        settings = services.settings
        services.mailer = SesMailer(
            services.client("sesv2"), settings.sender_address(), settings.ses_configuration_set
        )


def _event(email: Communication) -> dict[str, Any]:
    """One SQS record naming the email, shaped as Lambda's event source mapping delivers it."""
    queue = queue_name(Queue.COMMUNICATIONS)
    return {
        "Records": [
            {
                "messageId": new_ulid(),
                "receiptHandle": new_ulid(),
                "body": json.dumps(DeliveryRequest(email.account_id, email.id).to_message()),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:{queue}",
                "awsRegion": REGION,
            }
        ]
    }
