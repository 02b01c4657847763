"""Procedure use cases: create and edit the template of a document collection. Roles need the
`contributors` feature at the moment they are created (402 otherwise); nothing built is ever removed when a
trial ends. Automation templates are checked against their trigger's variables when saved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.errors import AccountNotFound, NotFound
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.plans import Feature
from chalicelib.domain.procedures import Automation, DocumentRequirement, Procedure, Role
from chalicelib.domain.templates import validate_template
from chalicelib.services.ports import AccountRepository


class ProcedureRepository(Protocol):
    def add(self, procedure: Procedure) -> Procedure: ...

    def get(self, account_id: str, procedure_id: str) -> Procedure | None: ...

    def save(self, procedure: Procedure) -> Procedure: ...


def get_procedure(account_id: str, procedure_id: str, procedures: ProcedureRepository) -> Procedure:
    procedure = procedures.get(account_id, procedure_id)
    if procedure is None:
        raise NotFound("No such procedure.")
    return procedure


def create_procedure(
    account_id: str,
    name: str,
    description: str | None,
    main_role_name: str | None,
    procedures: ProcedureRepository,
    now: datetime,
) -> Procedure:
    return procedures.add(Procedure.new(new_ulid(), account_id, name, description, main_role_name, now))


def change_procedure(
    account_id: str,
    procedure_id: str,
    change: Callable[[Procedure], Procedure],
    procedures: ProcedureRepository,
) -> Procedure:
    """Apply one change at the version read; a change that changes nothing writes nothing."""
    procedure = get_procedure(account_id, procedure_id, procedures)
    changed = change(procedure)
    return procedure if changed == procedure else procedures.save(changed)


def require_contributors(account_id: str, accounts: AccountRepository, now: datetime) -> None:
    account = accounts.get(account_id)
    if account is None:
        raise AccountNotFound()
    account.entitlements.require(Feature.CONTRIBUTORS, now)


def add_role(
    account_id: str,
    procedure_id: str,
    name: str,
    permissions: Any,
    procedures: ProcedureRepository,
    accounts: AccountRepository,
    now: datetime,
) -> Role:
    require_contributors(account_id, accounts, now)
    role = Role(new_ulid(), name, permissions)
    change_procedure(account_id, procedure_id, lambda p: p.with_role(role), procedures)
    return role


def add_document(
    account_id: str, procedure_id: str, document: DocumentRequirement, procedures: ProcedureRepository
) -> DocumentRequirement:
    document = replace(document, id=new_ulid())
    change_procedure(account_id, procedure_id, lambda p: p.with_document(document), procedures)
    return document


def add_automation(
    account_id: str, procedure_id: str, automation: Automation, procedures: ProcedureRepository
) -> Automation:
    validate_template(automation.trigger.kind, automation.template)
    automation = replace(automation, id=new_ulid())
    change_procedure(account_id, procedure_id, lambda p: p.with_automation(automation), procedures)
    return automation
