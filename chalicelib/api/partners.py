"""Partners: apporteurs, clients, products, contracts and projects, their filters and bulk changes, who
receives a client's emails, the manual email from the client record, and the client's history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from chalice.app import Response
from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.legal import InsurerBody, PostalAddressBody
from chalicelib.api.pagination import page, page_params, query_param, refuse_unknown_params
from chalicelib.api.requests import (
    DisplayName,
    EmailAddress,
    PatchBody,
    StrictBody,
    parse_body,
    sent_fields,
    staff_principal,
)
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import Communication, CommunicationKind, Recipient, TemplateSource
from chalicelib.domain.errors import FieldIssue, InvalidInput, NotFound
from chalicelib.domain.events import staff
from chalicelib.domain.legal import Insurer
from chalicelib.domain.partners import (
    CONTRACT_STATUSES,
    PROJECT_STATUSES,
    RULE_NONE,
    STATUSES,
    Apporteur,
    Client,
    Commissioning,
    Deal,
    DealFilters,
    Product,
    RecordKind,
    format_rate,
    parse_rate,
)
from chalicelib.domain.recipients import CommunicationRule
from chalicelib.services import bulk
from chalicelib.services import partners as service
from chalicelib.services.dunning import ContractSteps
from chalicelib.wiring import container

partners = ApiBlueprint(__name__)

RecordId = Annotated[StrictStr, Field(min_length=1, max_length=64)]


def _rate(value: str | None) -> str | None:
    try:
        parse_rate(value, "commission_rate")
    except InvalidInput as refusal:
        raise ValueError(refusal.details[0].issue) from refusal
    return value


class CommissioningBody(StrictBody):
    nullable = frozenset({"commission_rate"})
    commission_rate: Annotated[StrictStr | None, AfterValidator(_rate)] = None
    communication_rule: CommunicationRule = CommunicationRule.CLIENT

    def block(self) -> Commissioning:
        return Commissioning(parse_rate(self.commission_rate, "commission_rate"), self.communication_rule)


class ApporteurBody(StrictBody):
    nullable = frozenset({"email"})
    name: DisplayName
    email: EmailAddress | None = None
    commissioning: CommissioningBody | None = None


class ApporteurPatch(PatchBody):
    nullable = frozenset({"email"})
    name: DisplayName | None = None
    email: EmailAddress | None = None
    commissioning: CommissioningBody | None = None
    version: StrictInt | None = None


class ClientBody(ApporteurBody):
    nullable = frozenset({"email", "preferred_apporteur_id", "postal_address"})
    preferred_apporteur_id: RecordId | None = None
    postal_address: PostalAddressBody | None = None
    marketing_consent: StrictBool = False


class ClientPatch(ApporteurPatch):
    nullable = frozenset({"email", "preferred_apporteur_id", "postal_address"})
    preferred_apporteur_id: RecordId | None = None
    postal_address: PostalAddressBody | None = None
    marketing_consent: StrictBool | None = None


class ProductBody(StrictBody):
    nullable = frozenset({"insurer"})
    name: DisplayName
    commissioning: CommissioningBody | None = None
    insurer: InsurerBody | None = None


class ProductPatch(PatchBody):
    nullable = frozenset({"insurer"})
    name: DisplayName | None = None
    commissioning: CommissioningBody | None = None
    insurer: InsurerBody | None = None
    version: StrictInt | None = None


class ContractBody(StrictBody):
    nullable = frozenset({"product_id", "apporteur_id"})
    client_id: RecordId
    reference: DisplayName
    product_id: RecordId | None = None
    apporteur_id: RecordId | None = None
    commissioning: CommissioningBody | None = None
    status: Literal[CONTRACT_STATUSES] | None = None  # type: ignore[valid-type]


class ProjectBody(ContractBody):
    status: Literal[PROJECT_STATUSES] | None = None  # type: ignore[valid-type]


class ContractPatch(PatchBody):
    nullable = frozenset({"product_id", "apporteur_id"})
    version: StrictInt
    client_id: RecordId | None = None
    reference: DisplayName | None = None
    product_id: RecordId | None = None
    apporteur_id: RecordId | None = None
    commissioning: CommissioningBody | None = None
    status: Literal[CONTRACT_STATUSES] | None = None  # type: ignore[valid-type]


class ProjectPatch(ContractPatch):
    status: Literal[PROJECT_STATUSES] | None = None  # type: ignore[valid-type]


class BulkSet(StrictBody):
    communication_rule: CommunicationRule


class BulkBody(StrictBody):
    ids: list[RecordId]
    set: BulkSet


class ManualEmailBody(StrictBody):
    nullable = frozenset({"contract_id"})
    subject: StrictStr = Field(max_length=500)
    body: StrictStr = Field(max_length=20_000)
    contract_id: RecordId | None = None


# ---- views ----


def commissioning_view(block: Commissioning, with_source: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "commission_rate": format_rate(block.commission_rate),
        "communication_rule": block.communication_rule.value,
    }
    if with_source:
        view["prefilled_from"] = block.prefilled_from.value if block.prefilled_from else None
    return view


def record_view(
    record: Apporteur | Client | Product | Deal, insurers: dict[str, Insurer] | None = None
) -> dict[str, Any]:
    """A record as the API shows it; a deal shows the insurer of its product (from `insurers`)."""
    view: dict[str, Any] = {"id": record.id}
    if isinstance(record, Deal):
        view |= {
            "client_id": record.client_id,
            "reference": record.reference,
            "product_id": record.product_id,
            "apporteur_id": record.apporteur_id,
            "commissioning": commissioning_view(record.commissioning, with_source=True),
            "status": record.status,
        }
        insurer = (insurers or {}).get(record.product_id or "")
        view["insurer"] = insurer.as_json() if insurer else None
        if record.kind is RecordKind.CONTRACT:
            view["dunning_stage"] = record.dunning_stage
            view["cover_resumes_at"] = iso(record.cover_resumes_at) if record.cover_resumes_at else None
            view["suspension_voided"] = record.suspension_voided
    else:
        view["name"] = record.name
        if isinstance(record, Apporteur | Client):
            view["email"] = record.email
        if isinstance(record, Client):
            view["preferred_apporteur_id"] = record.preferred_apporteur_id
            view["postal_address"] = record.postal_address.as_json() if record.postal_address else None
            view["marketing_consent"] = record.marketing_consent
        if isinstance(record, Product):
            view["insurer"] = record.insurer.as_json() if record.insurer else None
        view["commissioning"] = commissioning_view(record.commissioning)
    return view | {"created_at": iso(record.created_at), "version": record.version}


def recipients_view(recipients: tuple[Recipient, ...]) -> list[dict[str, Any]]:
    return [{"name": r.name, "email": r.email, "party": r.party} for r in recipients]


def communication_view(communication: Communication) -> dict[str, Any]:
    return {
        "id": communication.id,
        "kind": communication.kind.value,
        "subject": communication.subject,
        "to": recipients_view(communication.to),
        "cc": recipients_view(communication.cc),
        "rule": communication.rule,
        "decided_by": communication.decided_by,
        "contract_id": communication.contract_id,
        "status": communication.status.value,
        "status_reason": communication.status_reason,
        "skipped_parties": list(communication.skipped_parties),
        "created_at": iso(communication.created_at),
        "sent_at": iso(communication.sent_at) if communication.sent_at else None,
    }


# ---- helpers ----


def _account() -> str:
    return staff_principal(partners.current_request).require_account()


def _changes(body: PatchBody) -> dict[str, Any]:
    changes = sent_fields(body, exclude=frozenset({"version"}))
    if "commissioning" in changes:
        changes["commissioning"] = body.commissioning.block()  # type: ignore[attr-defined]
    if isinstance(changes.get("postal_address"), PostalAddressBody):
        changes["postal_address"] = changes["postal_address"].address()
    if isinstance(changes.get("insurer"), InsurerBody):
        changes["insurer"] = changes["insurer"].insurer()
    return changes


def _now() -> datetime:
    return container().now()


# ---- apporteurs, clients, products ----

_PARTY_KINDS: dict[str, tuple[RecordKind, type[StrictBody], type[PatchBody]]] = {
    "apporteurs": (RecordKind.APPORTEUR, ApporteurBody, ApporteurPatch),
    "clients": (RecordKind.CLIENT, ClientBody, ClientPatch),
    "products": (RecordKind.PRODUCT, ProductBody, ProductPatch),
}


def _create_party(collection: str) -> Response:
    account_id = _account()
    kind, body_type, _ = _PARTY_KINDS[collection]
    body: Any = parse_body(partners.current_request, body_type)
    services = container()
    block = body.commissioning.block() if body.commissioning else None
    record: Apporteur | Client | Product
    if kind is RecordKind.APPORTEUR:
        record = service.create_apporteur(account_id, body.name, body.email, block, services.partners, _now())
    elif kind is RecordKind.CLIENT:
        address = body.postal_address.address() if body.postal_address else None
        record = service.create_client(
            account_id,
            body.name,
            body.email,
            body.preferred_apporteur_id,
            block,
            address,
            services.partners,
            _now(),
            marketing_consent=body.marketing_consent,
        )
    else:
        insurer = body.insurer.insurer() if body.insurer else None
        record = service.create_product(account_id, body.name, block, insurer, services.partners, _now())
    return Response(record_view(record), status_code=201)


def _list(kind: RecordKind) -> dict[str, Any]:
    account_id = _account()
    limit, cursor = page_params(partners.current_request)
    records, position = container().partners.list_records(account_id, kind, limit, cursor)
    return page([record_view(r) for r in records], position)


def _get(kind: RecordKind, record_id: str) -> dict[str, Any]:
    account_id = _account()
    record = service.get_record(account_id, kind, record_id, container().partners)
    return deal_views(account_id, [record])[0] if isinstance(record, Deal) else record_view(record)


def deal_views(account_id: str, deals: list[Deal]) -> list[dict[str, Any]]:
    insurers = service.insurers_of(account_id, deals, container().partners)
    return [record_view(deal, insurers) for deal in deals]


def _patch_party(collection: str, record_id: str) -> dict[str, Any]:
    account_id = _account()
    kind, _, patch_type = _PARTY_KINDS[collection]
    body: Any = parse_body(partners.current_request, patch_type)
    record = service.update_party(
        account_id, kind, record_id, _changes(body), body.version, container().partners, _now()
    )
    return record_view(record)


def _party_routes(collection: str) -> None:
    kind = _PARTY_KINDS[collection][0]

    def create() -> Response:
        return _create_party(collection)

    def listing() -> dict[str, Any]:
        return _list(kind)

    def read(**path: str) -> dict[str, Any]:
        return _get(kind, _only(path))

    def patch(**path: str) -> dict[str, Any]:
        return _patch_party(collection, _only(path))

    item = f"/{collection}/{{{kind.value}_id}}"
    _register(f"/{collection}", "POST", f"create_{kind.value}", create)
    _register(f"/{collection}", "GET", f"list_{collection}", listing)
    _register(item, "GET", f"get_{kind.value}", read)
    _register(item, "PATCH", f"update_{kind.value}", patch)


def _only(path: dict[str, str]) -> str:
    """The one path parameter of a record route (its name is the collection's: `client_id`…)."""
    (value,) = path.values()
    return value


def _register(path: str, method: str, name: str, view: Callable[..., Any]) -> None:
    view.__name__ = name
    view.__qualname__ = name
    partners.route(path, methods=[method], authorizer=staff_authorizer)(view)


# ---- contracts and projects ----

_DEAL_KINDS: dict[str, tuple[RecordKind, type[ContractBody], type[ContractPatch]]] = {
    "contracts": (RecordKind.CONTRACT, ContractBody, ContractPatch),
    "projects": (RecordKind.PROJECT, ProjectBody, ProjectPatch),
}


def _deal_routes(collection: str) -> None:
    kind, body_type, patch_type = _DEAL_KINDS[collection]

    def create() -> Response:
        account_id = _account()
        body = parse_body(partners.current_request, body_type)
        new = service.NewDeal(
            client_id=body.client_id,
            reference=body.reference,
            product_id=body.product_id,
            apporteur_id=body.apporteur_id,
            commissioning=body.commissioning.block() if body.commissioning else None,
            status=body.status,
        )
        deal = service.create_deal(account_id, kind, new, container().partners, _now())
        return Response(deal_views(account_id, [deal])[0], status_code=201)

    def listing() -> dict[str, Any]:
        account_id = _account()
        limit, cursor = page_params(
            partners.current_request, frozenset({"communication_rule", "apporteur_id", "client_id", "status"})
        )
        filters = _deal_filters(kind)
        deals, position = container().partners.filter_deals(account_id, kind, filters, limit, cursor)
        return page(deal_views(account_id, deals), position)

    def read(**path: str) -> dict[str, Any]:
        return _get(kind, _only(path))

    def patch(**path: str) -> dict[str, Any]:
        principal = staff_principal(partners.current_request)
        account_id = principal.require_account()
        body = parse_body(partners.current_request, patch_type)
        services = container()
        deal = service.update_deal(
            account_id,
            kind,
            _only(path),
            _changes(body),
            body.version,
            services.partners,
            _now(),
            ContractSteps(services.dunning_context()),
            staff(principal.subject),
            services.webhooks_queue,
        )
        return deal_views(account_id, [deal])[0]

    def bulk_update() -> Response:
        account_id = _account()
        body = parse_body(partners.current_request, BulkBody)
        services = container()
        job = bulk.start_rule_change(
            account_id,
            kind,
            body.ids,
            body.set.communication_rule,
            services.jobs,
            services.bulk_queue,
            _now(),
        )
        return Response({"job_id": job.id}, status_code=202)

    item = f"/{collection}/{{{kind.value}_id}}"
    _register(f"/{collection}", "POST", f"create_{kind.value}", create)
    _register(f"/{collection}", "GET", f"list_{collection}", listing)
    _register(item, "GET", f"get_{kind.value}", read)
    _register(item, "PATCH", f"update_{kind.value}", patch)
    _register(f"/{collection}/bulk-updates", "POST", f"bulk_update_{collection}", bulk_update)


def _deal_filters(kind: RecordKind) -> Any:
    request = partners.current_request
    rule, status = query_param(request, "communication_rule"), query_param(request, "status")
    issues = []
    rules = [r.value for r in CommunicationRule] + [RULE_NONE]
    if rule is not None and rule not in rules:
        issues.append(FieldIssue("communication_rule", f"must be one of: {', '.join(rules)}"))
    if status is not None and status not in STATUSES[kind]:
        issues.append(FieldIssue("status", f"must be one of: {', '.join(STATUSES[kind])}"))
    ids = {name: query_param(request, name) for name in ("apporteur_id", "client_id")}
    issues += [
        FieldIssue(name, "must be 1 to 64 characters")
        for name, v in ids.items()
        if v is not None and not 0 < len(v) <= 64
    ]
    if issues:
        raise InvalidInput("The filters are invalid.", issues)
    return DealFilters(communication_rule=rule, status=status, **ids)


for _collection in _PARTY_KINDS:
    _party_routes(_collection)
for _collection in _DEAL_KINDS:
    _deal_routes(_collection)


# ---- jobs, recipients, emails, history ----


@partners.route("/jobs/{job_id}", methods=["GET"], authorizer=staff_authorizer)
def get_job(job_id: str) -> dict[str, Any]:
    account_id = _account()
    job = container().jobs.get(account_id, job_id)
    if job is None:
        raise NotFound("No such job.")
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status.value,
        "total": job.total,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "failures": [{"id": f.id, "code": f.code.value, "message": f.message} for f in job.failures],
        "created_at": iso(job.created_at),
    }


@partners.route("/clients/{client_id}/recipients", methods=["GET"], authorizer=staff_authorizer)
def client_recipients(client_id: str) -> dict[str, Any]:
    account_id = _account()
    refuse_unknown_params(partners.current_request, {"contract_id", "kind"})
    request = partners.current_request
    raw_kind = query_param(request, "kind") or CommunicationKind.MANUAL.value
    try:
        kind = CommunicationKind(raw_kind)
    except ValueError as exc:
        raise InvalidInput("Unknown kind.", [FieldIssue("kind", "not a communication kind")]) from exc
    view = service.recipients_of(
        account_id, client_id, query_param(request, "contract_id"), kind, container().partners, _now()
    )
    resolution = view.resolution
    return {
        "to": recipients_view(resolution.to),
        "cc": recipients_view(resolution.cc),
        "rule": resolution.rule.value if resolution.rule else None,
        "decided_by": resolution.decided_by.value if resolution.decided_by else None,
        "skipped_parties": list(resolution.skipped_parties),
        "notes": list(resolution.notes),
    }


@partners.route("/clients/{client_id}/emails", methods=["POST"], authorizer=staff_authorizer)
def send_email(client_id: str) -> Response:
    principal = staff_principal(partners.current_request)
    account_id = principal.require_account()
    body = parse_body(partners.current_request, ManualEmailBody)
    services = container()
    communication = service.send_manual_email(
        account_id,
        client_id,
        body.contract_id,
        TemplateSource(subject=body.subject, body=body.body),
        services.partners,
        services.communications,
        services.communications_queue,
        _now(),
        staff(principal.subject),
        services.webhooks_queue,
    )
    answer = {
        "communication_id": communication.id,
        "status": communication.status.value,
        "to": recipients_view(communication.to),
        "cc": recipients_view(communication.cc),
    }
    return Response(answer, status_code=202)


@partners.route("/clients/{client_id}/communications", methods=["GET"], authorizer=staff_authorizer)
def client_communications(client_id: str) -> dict[str, Any]:
    account_id = _account()
    limit, cursor = page_params(partners.current_request)
    services = container()
    service.get_record(account_id, RecordKind.CLIENT, client_id, services.partners)
    communications, position = services.communications.client_history(account_id, client_id, limit, cursor)
    return page([communication_view(c) for c in communications], position)
