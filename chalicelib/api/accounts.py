"""Accounts and plans: /admin/accounts (platform administrators) and /account (the caller's own), and the
account's logo, which the API serves itself (`GET /logos/{account_id}`, public) so that the portal page's
Content-Security-Policy (`img-src 'self'`) admits it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from chalice.app import Request, Response
from pydantic import Field, StrictBool, StrictInt, StrictStr

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.legal import LegalPatch
from chalicelib.api.requests import (
    DisplayName,
    EmailAddress,
    PatchBody,
    StrictBody,
    api_url_of,
    parse_body,
    staff_principal,
)
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.accounts import Account
from chalicelib.domain.clock import iso
from chalicelib.domain.errors import NotFound
from chalicelib.domain.events import Actor, staff
from chalicelib.domain.legal import RegisteredMailChannel
from chalicelib.domain.plans import Plan, Trial
from chalicelib.services import accounts as service
from chalicelib.wiring import container

accounts = ApiBlueprint(__name__)

Booster = Literal["contributors"]


class CreateAccountBody(StrictBody):
    name: DisplayName
    plan: Plan
    sender_email: EmailAddress
    boosters: list[Booster] = Field(default_factory=list, max_length=10)


class ChangePlanBody(PatchBody):
    plan: Plan | None = None
    boosters: list[Booster] | None = Field(default=None, max_length=10)


class SettingsBody(PatchBody):
    """Every setting is optional: the ones sent change (null is refused)."""

    nullable = frozenset({"brand_color"})

    partner_communications_enabled: StrictBool | None = None
    registered_mail_channel: RegisteredMailChannel | None = None
    brand_color: StrictStr | None = Field(default=None, max_length=7)
    dossier_retention_days: StrictInt | None = None


class StartTrialBody(StrictBody):
    feature: StrictStr = Field(max_length=100)


def trial_view(trial: Trial) -> dict[str, str]:
    return {"feature": trial.feature, "started_at": iso(trial.started_at), "ends_at": iso(trial.ends_at)}


def account_view(account: Account, now: datetime, request: Request) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "plan": account.plan.value,
        "boosters": sorted(account.boosters),
        "sender_email": account.sender_email,
        "settings": {
            "partner_communications_enabled": account.partner_communications_enabled,
            "registered_mail_channel": account.registered_mail_channel.value,
            "brand_color": account.brand_color,
            "dossier_retention_days": account.dossier_retention_days,
        },
        "legal": account.legal.as_json() if account.legal else None,
        "logo_url": logo_url(request, account.id, account.logo_etag) if account.logo_etag else None,
        "trials": {
            feature: {"started_at": iso(t.started_at), "ends_at": iso(t.ends_at)}
            for feature, t in account.trials.items()
        },
        "features": {
            feature.value: {"enabled": access.enabled, "via": access.via.value if access.via else None}
            for feature, access in account.features(now).items()
        },
        "created_at": iso(account.created_at),
        "version": account.version,
    }


@accounts.route("/admin/accounts", methods=["POST"], authorizer=staff_authorizer)
def create_account() -> Response:
    staff_principal(accounts.current_request).require_platform_admin()
    body = parse_body(accounts.current_request, CreateAccountBody)
    services = container()
    now = services.now()
    account = service.create_account(
        service.NewAccount(body.name, body.plan, body.sender_email, frozenset(body.boosters)),
        services.accounts,
        services.communications_queue,
        now,
    )
    return Response(account_view(account, now, accounts.current_request), status_code=201)


@accounts.route("/admin/accounts/{account_id}", methods=["PATCH"], authorizer=staff_authorizer)
def change_plan(account_id: str) -> dict[str, Any]:
    staff_principal(accounts.current_request).require_platform_admin()
    body = parse_body(accounts.current_request, ChangePlanBody)
    services = container()
    boosters = None if body.boosters is None else frozenset(body.boosters)
    account = service.change_plan(account_id, body.plan, boosters, services.accounts)
    return account_view(account, services.now(), accounts.current_request)


@accounts.route("/account", methods=["GET"], authorizer=staff_authorizer)
def get_account() -> dict[str, Any]:
    account_id = staff_principal(accounts.current_request).require_account()
    services = container()
    return account_view(
        service.get_account(account_id, services.accounts), services.now(), accounts.current_request
    )


def _admin() -> tuple[str, Actor]:
    """The caller's account (account administrators only) and the caller, as the audit trail names him."""
    principal = staff_principal(accounts.current_request)
    return principal.require_account(admin_only=True), staff(principal.subject)


@accounts.route("/account/settings", methods=["PATCH"], authorizer=staff_authorizer)
def change_settings() -> dict[str, Any]:
    account_id, actor = _admin()
    body = parse_body(accounts.current_request, SettingsBody)
    services = container()
    now = services.now()
    sent = body.model_fields_set & {"brand_color", "dossier_retention_days"}
    account = service.set_settings(
        account_id,
        body.partner_communications_enabled,
        body.registered_mail_channel,
        services.accounts,
        now,
        actor,
        {name: getattr(body, name) for name in sent},
    )
    return account_view(account, now, accounts.current_request)


@accounts.route(
    "/account/logo",
    methods=["PUT"],
    authorizer=staff_authorizer,
    content_types=["image/png", "image/jpeg"],
)
def put_logo() -> dict[str, Any]:
    account_id, actor = _admin()
    request = accounts.current_request
    services = container()
    stored = service.set_logo(
        account_id,
        _bytes(request.raw_body),
        request.headers.get("content-type", ""),
        services.accounts,
        services.logos,
        actor,
        services.now(),
    )
    return {"logo_url": logo_url(request, account_id, stored.etag), "content_type": stored.logo.content_type}


def _bytes(raw: str | bytes | None) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw or b""


def logo_url(request: Request, account_id: str, etag: str) -> str:
    """The logo's address on the API itself (the portal page's own origin, stage included); the version
    parameter changes with the bytes, so a browser may keep one version for a day and still shows a new
    logo at once."""
    api_url = container().settings.api_url or api_url_of(request) or ""
    return f"{api_url}/logos/{account_id}?v={etag[:12]}"


@accounts.route("/logos/{account_id}", methods=["GET"])
def get_logo(account_id: str) -> Response:
    stored = container().logos.get(account_id)
    if stored is None:
        raise NotFound("This account has no logo.")
    etag = f'"{stored.etag}"'
    headers: dict[str, str | list[str]] = {
        "Cache-Control": "public, max-age=86400",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    }
    if accounts.current_request.headers.get("if-none-match") == etag:
        return Response(body="", status_code=304, headers=headers)
    return Response(
        body=stored.logo.data, status_code=200, headers={**headers, "Content-Type": stored.logo.content_type}
    )


@accounts.route("/account/legal", methods=["PATCH"], authorizer=staff_authorizer)
def change_legal_identity() -> dict[str, Any]:
    account_id, actor = _admin()
    body = parse_body(accounts.current_request, LegalPatch)
    services = container()
    account = service.set_legal_identity(account_id, body.changes(), services.accounts, actor, services.now())
    return account_view(account, services.now(), accounts.current_request)


@accounts.route("/account/trials", methods=["POST"], authorizer=staff_authorizer)
def start_trial() -> Response:
    account_id = staff_principal(accounts.current_request).require_account(admin_only=True)
    body = parse_body(accounts.current_request, StartTrialBody)
    services = container()
    trial = service.start_trial(account_id, body.feature, services.accounts, services.now())
    return Response(trial_view(trial), status_code=201)
