"""Procedures and dossiers in the one table, and the transaction that writes a dossier with what its
change causes (portal tokens minted or revoked, emails queued): all of it or nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactGet, TransactWrite

from chalicelib.adapters.dynamodb.audit import audit_item
from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.deadlines import deadline_item, erasure_item
from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.adapters.dynamodb.models import (
    AccountItem,
    AuditEntryItem,
    DossierItem,
    DossierLinkItem,
    EventItem,
    PortalTokenItem,
    ProcedureItem,
    condition_failed,
    transactions,
)
from chalicelib.adapters.dynamodb.repositories import (
    DynamoAccountRepository,
    DynamoCommunicationRepository,
    NewCommunications,
    save_link,
)
from chalicelib.domain.accounts import Account
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import iso, parse_iso
from chalicelib.domain.communications import (
    Communication,
    CommunicationStatus,
    TemplateSource,
    communication_event,
    erased_with_its_dossier,
)
from chalicelib.domain.dossiers import (
    Contributor,
    DocumentStatus,
    Dossier,
    DossierDocument,
    DossierStatus,
    Person,
    Review,
    Upload,
    UploadStatus,
)
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.domain.events import Event, Subject, SubjectKind
from chalicelib.domain.procedures import (
    Access,
    Automation,
    DocumentRequirement,
    Permissions,
    Procedure,
    Role,
    Target,
    Trigger,
)
from chalicelib.services.ports import StoredLink

Cursor = dict[str, Any]


PROCEDURE_BYTES = 150_000
"""A procedure's stored body at most: every dossier carries a snapshot of it in its own item."""
DOSSIER_BYTES = 380_000
"""A dossier's stored body at most, below DynamoDB's 400 KB per item with its other attributes."""


def _fitting(body: dict[str, Any], limit: int, refusal: str) -> dict[str, Any]:
    """The body, if its JSON (as JSONAttribute stores it) fits `limit` bytes; a 409 otherwise, never
    DynamoDB's ValidationException (a 500) on save."""
    if len(json.dumps(body).encode()) > limit:
        raise Conflict(refusal)
    return body


def _procedure_body_fitting(procedure: Procedure) -> dict[str, Any]:
    return _fitting(
        procedure_body(procedure),
        PROCEDURE_BYTES,
        "This procedure is too large to store: shorten its automations' texts or its descriptions.",
    )


def _pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def _dossier_pk(account_id: str, dossier_id: str) -> str:
    return f"ACCOUNT#{account_id}#DOSSIER#{dossier_id}"


# ---- codecs ----


def procedure_body(procedure: Procedure) -> dict[str, Any]:
    return {
        "name": procedure.name,
        "description": procedure.description,
        "roles": [
            {
                "id": r.id,
                "name": r.name,
                "access": r.permissions.access.value,
                "can_invite": r.permissions.can_invite,
                "sees_shared_files": r.permissions.sees_shared_files,
            }
            for r in procedure.roles
        ],
        "documents": [
            {
                "id": d.id,
                "label": d.label,
                "description": d.description,
                "required": d.required,
                "role_id": d.role_id,
                "accepted_types": list(d.accepted_types),
                "max_size_mb": d.max_size_mb,
            }
            for d in procedure.documents
        ],
        "automations": [
            {
                "id": a.id,
                "trigger": a.trigger.value,
                "to": a.to.value,
                "subject": a.template.subject,
                "body": a.template.body,
                "enabled": a.enabled,
                "days_before": a.days_before,
            }
            for a in procedure.automations
        ],
    }


def procedure_from(
    procedure_id: str, account_id: str, body: dict[str, Any], created_at: datetime, version: int
) -> Procedure:
    return Procedure(
        id=procedure_id,
        account_id=account_id,
        name=body["name"],
        description=body.get("description"),
        roles=tuple(
            Role(
                r["id"],
                r["name"],
                Permissions(Access(r["access"]), bool(r["can_invite"]), bool(r["sees_shared_files"])),
            )
            for r in body["roles"]
        ),
        documents=tuple(
            DocumentRequirement(
                d["id"],
                d["label"],
                d.get("description"),
                bool(d["required"]),
                d["role_id"],
                tuple(d["accepted_types"]),
                int(d["max_size_mb"]),
            )
            for d in body["documents"]
        ),
        automations=tuple(
            Automation(
                a["id"],
                Trigger(a["trigger"]),
                Target(a["to"]),
                TemplateSource(a["subject"], a["body"]),
                bool(a["enabled"]),
                a.get("days_before"),
            )
            for a in body["automations"]
        ),
        created_at=created_at,
        version=version,
    )


def _dossier_body(dossier: Dossier) -> dict[str, Any]:
    procedure = dossier.procedure
    return {
        "procedure": {
            "id": procedure.id,
            "created_at": iso(procedure.created_at),
            **procedure_body(procedure),
        },
        "reference": dossier.reference,
        "recipient": {"name": dossier.recipient.name, "email": dossier.recipient.email},
        "due_date": dossier.due_date.isoformat() if dossier.due_date else None,
        "documents": [
            {
                "id": d.id,
                "status": d.status.value,
                "review": {"comment": d.review.comment, "at": iso(d.review.at)} if d.review else None,
                "rejections": d.rejections,
            }
            for d in dossier.documents
        ],
        "contributors": [
            {
                "id": c.id,
                "role_id": c.role_id,
                "name": c.name,
                "email": c.email,
                "invited_at": iso(c.invited_at),
            }
            for c in dossier.contributors
        ],
        "uploads": [
            {
                "id": u.id,
                "document_id": u.document_id,
                "filename": u.filename,
                "content_type": u.content_type,
                "size": u.size,
                "key": u.key,
                "status": u.status.value,
                "created_at": iso(u.created_at),
                "reason": u.reason,
                "uploaded_at": iso(u.uploaded_at) if u.uploaded_at else None,
                "uploaded_by": u.uploaded_by,
                "version": u.version,
                "round": u.round,
            }
            for u in dossier.uploads
        ],
        "finished_roles": list(dossier.finished_roles),
        "link_generations": dict(dossier.link_generations),
        "last_event_id": dossier.last_event_id,
    }


def _dossier_from(item: DossierItem) -> Dossier:
    body: dict[str, Any] = dict(item.body)
    account_id, dossier_id = item.pk.removeprefix("ACCOUNT#").split("#DOSSIER#")
    snapshot = body["procedure"]
    procedure = procedure_from(snapshot["id"], account_id, snapshot, parse_iso(snapshot["created_at"]), 0)
    requirements = {r.id: r for r in procedure.documents}
    return Dossier(
        id=dossier_id,
        account_id=account_id,
        procedure=procedure,
        reference=body["reference"],
        recipient=Person(body["recipient"]["name"], body["recipient"]["email"]),
        due_date=date.fromisoformat(body["due_date"]) if body.get("due_date") else None,
        created_at=item.created_at,
        status=DossierStatus(item.status),
        documents=tuple(
            DossierDocument(
                requirements[d["id"]],
                DocumentStatus(d["status"]),
                Review(d["review"]["comment"], parse_iso(d["review"]["at"])) if d.get("review") else None,
                int(d.get("rejections", 0)),
            )
            for d in body["documents"]
        ),
        contributors=tuple(
            Contributor(c["id"], c["role_id"], c["name"], c["email"], parse_iso(c["invited_at"]))
            for c in body["contributors"]
        ),
        uploads=tuple(
            Upload(
                u["id"],
                u["document_id"],
                u["filename"],
                u["content_type"],
                int(u["size"]),
                u["key"],
                UploadStatus(u["status"]),
                parse_iso(u["created_at"]),
                u.get("reason"),
                parse_iso(u["uploaded_at"]) if u.get("uploaded_at") else None,
                u.get("uploaded_by"),
                u.get("version"),
                int(u.get("round", 0)),
            )
            for u in body["uploads"]
        ),
        finished_roles=tuple(body.get("finished_roles", ())),
        link_generations=tuple(sorted((k, int(v)) for k, v in body.get("link_generations", {}).items())),
        last_event_id=str(body.get("last_event_id") or ""),
    )


def _still_stored(token_hashes: tuple[str, ...]) -> list[str]:
    """The links whose token item is still there, to revoke (one BatchGetItem per 100): TTL deletes a
    token's item a day after it expired, and revoking it under `pk.exists()` would cancel the whole change
    for good (a contributor invited more than RELAIS_PORTAL_TOKEN_DAYS ago could never be removed)."""
    if not token_hashes:
        return []
    keys = [(f"PORTALTOKEN#{token_hash}", "PORTALTOKEN") for token_hash in sorted(set(token_hashes))]
    found = PortalTokenItem.batch_get(keys, attributes_to_get=["PK"])
    return sorted(item.pk.removeprefix("PORTALTOKEN#") for item in found)


def _skip_queued_emails(account_id: str, pk: str, at: datetime) -> list[Event]:
    """Settle `skipped` (DOSSIER_ERASED), content forgotten, each email the dossier's link traces name that
    is still queued, with its `communication.skipped` event in the account's activity log (the dossier's
    goes with it): a worker's claim then finds nothing to send. One Query page and one BatchGetItem of
    statuses per 100 traces, then a read and a conditional write per email still queued."""
    communications = DynamoCommunicationRepository()
    traces = DossierLinkItem.query(pk, DossierLinkItem.sk.startswith("PORTALTOKEN#"), page_size=100)
    emailed = [(account_id, t.communication_id) for t in traces if t.communication_id]
    queued = [
        key
        for key, status in communications.statuses(emailed).items()
        if status is CommunicationStatus.QUEUED
    ]
    written: list[Event] = []
    for _, communication_id in sorted(queued):
        email = communications.get(account_id, communication_id)
        if email is None:
            continue
        erased = erased_with_its_dossier(email)
        event = communication_event(erased, at, subject=Subject(SubjectKind.ACCOUNT, account_id))
        written += communications.skip_erased(erased, [event] if event else [], at) or []
    return written


# ---- repositories ----


class DynamoProcedureRepository:
    def add(self, procedure: Procedure) -> Procedure:
        item = ProcedureItem(
            _pk(procedure.account_id),
            f"PROCEDURE#{procedure.id}",
            body=_procedure_body_fitting(procedure),
            created_at=procedure.created_at,
        )
        try:
            item.save(condition=ProcedureItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict("A procedure with this id already exists.") from exc
            raise
        return replace(procedure, version=int(item.version or 0))

    def get(self, account_id: str, procedure_id: str) -> Procedure | None:
        try:
            item = ProcedureItem.get(_pk(account_id), f"PROCEDURE#{procedure_id}")
        except DoesNotExist:
            return None
        return procedure_from(
            procedure_id, account_id, dict(item.body), item.created_at, int(item.version or 0)
        )

    def save(self, procedure: Procedure) -> Procedure:
        item = ProcedureItem(
            _pk(procedure.account_id),
            f"PROCEDURE#{procedure.id}",
            body=_procedure_body_fitting(procedure),
            created_at=procedure.created_at,
        )
        item.version = procedure.version
        try:
            item.save()
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise StaleVersion() from exc
            raise
        return replace(procedure, version=int(item.version or 0))

    def list_procedures(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Procedure], Cursor | None]:
        check_cursor(cursor, "PK", _pk(account_id))
        query = ProcedureItem.query(
            _pk(account_id), ProcedureItem.sk.startswith("PROCEDURE#"), limit=limit, last_evaluated_key=cursor
        )
        found = [
            procedure_from(
                item.sk.removeprefix("PROCEDURE#"),
                account_id,
                dict(item.body),
                item.created_at,
                int(item.version or 0),
            )
            for item in query
        ]
        return found, query.last_evaluated_key


class DynamoDossierRepository:
    def get(self, account_id: str, dossier_id: str) -> tuple[Dossier, int, dict[str, list[str]]] | None:
        """The dossier, its stored version and its participants' live token hashes."""
        try:
            item = DossierItem.get(_dossier_pk(account_id, dossier_id), "DOSSIER")
        except DoesNotExist:
            return None
        return (
            _dossier_from(item),
            int(item.version or 0),
            {k: list(v) for k, v in (item.tokens or {}).items()},
        )

    def get_with_account(self, account_id: str, dossier_id: str) -> tuple[Dossier | None, Account | None]:
        """The dossier and its account in one TransactGetItems (the portal page shows both); None for
        either one that does not exist."""
        with TransactGet(connection=transactions()) as transaction:
            dossier = transaction.get(DossierItem, _dossier_pk(account_id, dossier_id), "DOSSIER")
            account = transaction.get(AccountItem, f"ACCOUNT#{account_id}", "ACCOUNT")
        try:
            found_dossier: Dossier | None = _dossier_from(dossier.get())
        except DossierItem.DoesNotExist:
            found_dossier = None
        try:
            found_account: Account | None = DynamoAccountRepository.to_domain(account.get())
        except AccountItem.DoesNotExist:
            found_account = None
        return found_dossier, found_account

    def commit(
        self,
        dossier: Dossier,
        version: int,
        tokens: dict[str, list[str]],
        minted: tuple[StoredLink, ...] = (),
        revoked: tuple[str, ...] = (),
        communications: tuple[tuple[Communication, datetime], ...] = (),
        deadlines: tuple[tuple[str, datetime], ...] = (),
        erase_at: datetime | None = None,
        events: tuple[Event, ...] = (),
    ) -> int:
        """Write the dossier at `version` (0: a new one) with the tokens it mints (its emails' links
        among them) and revokes, the emails it queues (screened: `NewCommunications`) and the events it
        reports, in one TransactWriteItems. StaleVersion when the dossier changed meanwhile;
        RecipientsSuppressed when an address of an email is on the suppression list."""
        item = DossierItem(
            _dossier_pk(dossier.account_id, dossier.id),
            "DOSSIER",
            body=_fitting(
                _dossier_body(dossier),
                DOSSIER_BYTES,
                "This dossier is full: it cannot keep one more file or change; ask your manager.",
            ),
            tokens=tokens,
            status=dossier.status.value,
            procedure_id=dossier.procedure.id,
            created_at=dossier.created_at,
            gsi1_pk=f"ACCOUNT#{dossier.account_id}#DOSSIERS",
            gsi1_sk=dossier.id,
        )
        if version:
            item.version = version
        transaction = TransactWrite(connection=transactions())
        emails = NewCommunications(transaction)
        try:
            with transaction:
                condition = DossierItem.pk.does_not_exist() if not version else None
                transaction.save(item, condition=condition)
                for link in minted:
                    save_link(transaction, link)
                for token_hash in _still_stored(revoked):
                    transaction.update(
                        PortalTokenItem(f"PORTALTOKEN#{token_hash}", "PORTALTOKEN"),
                        actions=[PortalTokenItem.revoked.set(True)],
                        condition=PortalTokenItem.pk.exists(),
                    )
                for automation_id, at in deadlines:
                    transaction.save(deadline_item(dossier.account_id, dossier.id, automation_id, at))
                if erase_at is not None:
                    transaction.save(erasure_item(dossier.account_id, dossier.id, erase_at))
                for communication, retry_at in communications:
                    emails.add(communication, retry_at)
                for event in events:
                    transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
        except TransactWriteError as exc:
            emails.raise_if_suppressed(exc)
            if condition_failed(exc):
                raise StaleVersion() from exc
            raise
        return version + 1

    def erase(
        self, account_id: str, dossier_id: str, token_hashes: list[str], audit: AuditEntry
    ) -> list[Event]:
        """Skip the dossier's still-queued emails its links' traces name (`_skip_queued_emails`), then
        delete the dossier's partition (its scheduled deadlines, one item per automation; its events; the
        trace of every link it minted, each expiring with its link: a few Query pages) with the token
        item of every link it minted, live or revoked, then the dossier itself with the audit entry in
        one transaction, written only while the dossier exists. A failure half-way leaves the dossier to
        be erased again; a second erasure records nothing. `token_hashes`: its live links, for dossiers
        minted before their links left a trace. The events of the emails skipped."""
        pk = _dossier_pk(account_id, dossier_id)
        skipped = _skip_queued_emails(account_id, pk, audit.at)
        tokens = set(token_hashes)
        with DossierItem.batch_write() as batch:
            for item in DossierItem.query(pk, page_size=100):
                if item.sk == "DOSSIER":
                    continue
                if item.sk.startswith("PORTALTOKEN#"):
                    tokens.add(item.sk.removeprefix("PORTALTOKEN#"))
                batch.delete(item)
            for token_hash in sorted(tokens):
                batch.delete(PortalTokenItem(f"PORTALTOKEN#{token_hash}", "PORTALTOKEN"))
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.delete(
                    DossierItem(pk, "DOSSIER"), condition=DossierItem.pk.exists(), add_version_condition=False
                )
                transaction.save(audit_item(audit), condition=AuditEntryItem.pk.does_not_exist())
        except TransactWriteError as exc:
            if not condition_failed(exc):
                raise
        return skipped

    def list_dossiers(
        self, account_id: str, status: str | None, procedure_id: str | None, limit: int, cursor: Cursor | None
    ) -> tuple[list[Dossier], Cursor | None]:
        check_cursor(cursor, "GSI1PK", f"ACCOUNT#{account_id}#DOSSIERS")
        condition = None
        if status:
            condition = DossierItem.status == status
        if procedure_id:
            term = DossierItem.procedure_id == procedure_id
            condition = term if condition is None else condition & term
        query = DossierItem.by_account.query(
            f"ACCOUNT#{account_id}#DOSSIERS",
            filter_condition=condition,
            limit=limit,
            last_evaluated_key=cursor,
            scan_index_forward=False,
        )
        return [_dossier_from(item) for item in query], query.last_evaluated_key
