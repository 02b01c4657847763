"""Mailings: the mailing item and its page items form one collection (`ACCOUNT#<a>#MAILING#<id>`).

A fan-out page is written by one TransactWriteItems: its page item (only if absent), its emails, and the
counts it adds to the mailing; a redelivered page therefore writes and counts nothing twice. The emails'
outcomes move the counts later, with their own settle (`DynamoCommunicationRepository.settle`). Whichever
of these writes ends the mailing also writes `mailing.finished` (`mailing_counts`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.mailing_counts import MailingCount, write_counted
from chalicelib.adapters.dynamodb.models import CommunicationItem, MailingItem
from chalicelib.adapters.dynamodb.repositories import communication_item, mailing_pk
from chalicelib.adapters.dynamodb.stalls import claim_stalled, stall_pk, stall_sk
from chalicelib.domain.communications import Communication, CommunicationStatus, TemplateSource
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.domain.events import Event
from chalicelib.domain.jobs import STALLED_AFTER
from chalicelib.domain.mailings import Audience, AudienceEntity, Mailing, PageOutcome


def _audience_raw(audience: Audience) -> dict[str, object]:
    return {
        "entity": audience.entity.value,
        "communication_rule": audience.communication_rule,
        "apporteur_id": audience.apporteur_id,
        "product_id": audience.product_id,
        "status": audience.status,
        "ids": list(audience.ids) if audience.ids is not None else None,
    }


def _audience(raw: dict[str, object]) -> Audience:
    ids = raw.get("ids")
    return Audience(
        entity=AudienceEntity(str(raw["entity"])),
        communication_rule=_optional(raw.get("communication_rule")),
        apporteur_id=_optional(raw.get("apporteur_id")),
        product_id=_optional(raw.get("product_id")),
        status=_optional(raw.get("status")),
        ids=tuple(str(i) for i in ids) if isinstance(ids, list) else None,
    )


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def _while_draft(write: Callable[[Condition], object]) -> bool:
    """Make a write conditioned on the mailing being a draft; False when it is a draft no more."""
    try:
        write(MailingItem.state == "draft")
    except (UpdateError, DeleteError) as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _list_partition(account_id: str) -> str:
    return f"ACCOUNT#{account_id}#MAILINGS"


def _mailing_from(item: MailingItem, account_id: str, mailing_id: str) -> Mailing:
    template = item.template or {}
    return Mailing(
        id=mailing_id,
        account_id=account_id,
        name=str(item.name),
        template=TemplateSource(subject=str(template["subject"]), body=str(template["body"])),
        audience=_audience(item.audience or {}),
        created_at=item.created_at or datetime.min,
        sending=item.state == "sending",
        send_requested_at=item.send_requested_at,
        total=int(item.total or 0),
        sent=int(item.sent or 0),
        failed=int(item.failed or 0),
        skipped=int(item.skipped or 0),
        fanned_out=bool(item.fanned_out),
        incomplete=bool(item.incomplete),
        version=int(item.draft_version or 0),
    )


class DynamoMailingRepository:
    def add(self, mailing: Mailing) -> None:
        MailingItem(
            mailing_pk(mailing.account_id, mailing.id),
            "MAILING",
            name=mailing.name,
            template={"subject": mailing.template.subject, "body": mailing.template.body},
            audience=_audience_raw(mailing.audience),
            state="draft",
            total=0,
            sent=0,
            failed=0,
            skipped=0,
            fanned_out=False,
            unsettled=0,
            draft_version=mailing.version,
            created_at=mailing.created_at,
            gsi1_pk=_list_partition(mailing.account_id),
            gsi1_sk=mailing.id,
        ).save(condition=MailingItem.pk.does_not_exist())

    def get(self, account_id: str, mailing_id: str) -> Mailing | None:
        try:
            item = MailingItem.get(mailing_pk(account_id, mailing_id), "MAILING")
        except DoesNotExist:
            return None
        return _mailing_from(item, account_id, mailing_id)

    def list_mailings(
        self, account_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Mailing], dict[str, Any] | None]:
        """The account's mailings, newest first (ids are ULIDs): one Query of GSI1."""
        partition = _list_partition(account_id)
        check_cursor(cursor, "GSI1PK", partition)
        query = MailingItem.by_account.query(
            partition, scan_index_forward=False, limit=limit, last_evaluated_key=cursor
        )
        found = [_mailing_from(item, account_id, str(item.gsi1_sk)) for item in query]
        return found, query.last_evaluated_key

    def replace_draft(self, mailing: Mailing, version: int) -> Mailing:
        """Write a draft's name, template and audience if it is still the draft read at `version`, moving
        its version on; Conflict when it is a draft no more, StaleVersion when another edit came first."""
        item = MailingItem(mailing_pk(mailing.account_id, mailing.id), "MAILING")
        template = {"subject": mailing.template.subject, "body": mailing.template.body}
        actions: list[Action] = [
            MailingItem.name.set(mailing.name),
            MailingItem.template.set(template),
            MailingItem.audience.set(_audience_raw(mailing.audience)),
            MailingItem.draft_version.set(version + 1),
        ]
        # Drafts written before they had a version are at version 0.
        at_version = (
            MailingItem.draft_version == version if version else MailingItem.draft_version.does_not_exist()
        )
        try:
            item.update(actions=actions, condition=(MailingItem.state == "draft") & at_version)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            current = self.get(mailing.account_id, mailing.id)
            if current is None or current.sending:
                raise Conflict("This mailing is being sent; only a draft can be changed.") from exc
            raise StaleVersion() from exc
        return replace(mailing, version=version + 1)

    def delete_draft(self, account_id: str, mailing_id: str) -> bool:
        """Delete a draft (it has no page nor email yet); False when it is a draft no more."""
        item = MailingItem(mailing_pk(account_id, mailing_id), "MAILING")
        return _while_draft(lambda draft: item.delete(condition=draft))

    def start_sending(
        self, account_id: str, mailing_id: str, at: datetime, first_page: dict[str, Any]
    ) -> bool:
        """Draft → sending, once, on the `due` index until fanned out (`first_page` is re-queued if nothing
        moves it on); False when it was not a draft any more (sent already, or a race lost)."""
        pk = mailing_pk(account_id, mailing_id)
        actions: list[Action] = [
            MailingItem.state.set("sending"),
            MailingItem.send_requested_at.set(at),
            MailingItem.resume_message.set(first_page),
            MailingItem.due_pk.set(stall_pk(pk)),
            MailingItem.due_sk.set(stall_sk(at + STALLED_AFTER, pk)),
        ]
        item = MailingItem(pk, "MAILING")
        return _while_draft(lambda draft: item.update(actions=actions, condition=draft))

    def undo_sending(self, account_id: str, mailing_id: str) -> None:
        """Back to draft when its first page could not be queued, so that sending it again works."""
        MailingItem(mailing_pk(account_id, mailing_id), "MAILING").update(
            actions=[
                MailingItem.state.set("draft"),
                MailingItem.send_requested_at.remove(),
                MailingItem.resume_message.remove(),
                MailingItem.due_pk.remove(),
                MailingItem.due_sk.remove(),
            ],
            condition=(MailingItem.state == "sending") & (MailingItem.total == 0),
        )

    def claim_stalled(
        self, account_id: str, mailing_id: str, as_of: datetime
    ) -> tuple[int, dict[str, Any]] | None:
        """Move a stalled fan-out's moment on by STALLED_AFTER and count one resume: the resumes so far and
        the message of the page to fan out next, or None when it moved on since the tick read it."""
        item = MailingItem(mailing_pk(account_id, mailing_id), "MAILING")
        if not claim_stalled(item, as_of, as_of + STALLED_AFTER) or not item.resume_message:
            return None
        return int(item.resumes or 0), dict(item.resume_message)

    def give_up_fan_out(self, account_id: str, mailing_id: str, at: datetime) -> list[Event]:
        """End a fan-out whose next page failed at every attempt: what it counted stays, the mailing is
        `incomplete` (so `partially_failed` once its emails are settled) and leaves the schedule. The
        events written: `mailing.finished` when every email it counted was settled already."""
        count = MailingCount(
            adds={},
            fans_out=True,
            incomplete=True,
            actions=[
                MailingItem.resume_message.remove(),
                MailingItem.due_pk.remove(),
                MailingItem.due_sk.remove(),
            ],
            condition=MailingItem.state == "sending",
        )
        written = write_counted(
            lambda transaction: 0, mailing_pk(account_id, mailing_id), account_id, mailing_id, count, [], at
        )
        return written or []

    def leave_schedule(self, account_id: str, mailing_id: str) -> None:
        """Take a mailing that is not fanning out (any more) off the `due` index."""
        try:
            MailingItem(mailing_pk(account_id, mailing_id), "MAILING").update(
                actions=[MailingItem.due_pk.remove(), MailingItem.due_sk.remove()],
                condition=(MailingItem.fanned_out == True) | (MailingItem.state != "sending"),  # noqa: E712
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def record_page(
        self,
        account_id: str,
        mailing_id: str,
        page: int,
        communications: list[Communication],
        outcome: PageOutcome,
        next_page: dict[str, Any] | None,
        retry_at: datetime,
        now: datetime,
    ) -> list[Event] | None:
        """Write a page's emails and counts once, with the page to fan out next (None: this was the last, and
        the mailing leaves the schedule); None when this page had been written already, else the events
        written (`mailing.finished` when this page ended the mailing: nothing of it was left to send)."""
        pk = mailing_pk(account_id, mailing_id)
        if next_page is None:
            progress: list[Any] = [
                MailingItem.resume_message.remove(),
                MailingItem.due_pk.remove(),
                MailingItem.due_sk.remove(),
            ]
        else:
            # Progress: the fan-out counts as stalled only if nothing moves it on again.
            progress = [
                MailingItem.resume_message.set(next_page),
                MailingItem.due_sk.set(stall_sk(now + STALLED_AFTER, pk)),
                MailingItem.resumes.set(0),
            ]
        count = MailingCount(
            adds={"total": outcome.entities, "failed": outcome.failed, "skipped": outcome.skipped},
            unsettled=sum(1 for c in communications if c.status is CommunicationStatus.QUEUED),
            fans_out=next_page is None,
            actions=progress,
            condition=MailingItem.state == "sending",
        )
        page_item = MailingItem(pk, f"PAGE#{page:06d}", total=outcome.entities, created_at=retry_at)

        def own(transaction: TransactWrite) -> int:
            transaction.save(page_item, condition=MailingItem.pk.does_not_exist())
            for communication in communications:
                transaction.save(
                    communication_item(communication, retry_at),
                    condition=CommunicationItem.pk.does_not_exist(),
                )
            return 1 + len(communications)

        return write_counted(own, pk, account_id, mailing_id, count, [], now)
