"""Parsing at the edge: JSON bodies into strict pydantic models, errors into `validation_error` details."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, TypeVar

from chalice.app import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from chalicelib.domain.errors import FieldIssue, InvalidInput, Unauthenticated
from chalicelib.domain.identity import PortalPrincipal, Role, StaffPrincipal
from chalicelib.domain.validation import email_issue, name_issue

MAX_BODY_BYTES = 1024 * 1024
"""Enforced once, by the HTTP middleware, before any route reads the body."""


def _check(issue_of: Any) -> Any:
    def validator(value: str) -> str:
        issue = issue_of(value)
        if issue:
            raise ValueError(issue)
        return value

    return validator


EmailAddress = Annotated[str, AfterValidator(_check(email_issue))]
DisplayName = Annotated[str, AfterValidator(_check(name_issue))]


class StrictBody(BaseModel):
    """Unknown fields are refused: a typo must not pass silently as 'nothing to change'.
    Lax mode lets JSON strings fill enums; booleans are declared StrictBool where 1 or "yes" must fail."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PatchBody(StrictBody):
    """A partial update: every field may be left out, but a field that is sent may not be null, except
    the optional ones named in `nullable`, where null removes the value."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [
                key
                for key, value in data.items()
                if value is None and key in cls.model_fields and key not in cls.nullable
            ]
            if nulls:
                raise InvalidInput(
                    "The request is invalid.", [FieldIssue(name, "must not be null") for name in nulls]
                )
        return data


Body = TypeVar("Body", bound=BaseModel)

_ISSUES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


def _issue(error: Any) -> FieldIssue:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] in _ISSUES:
        return FieldIssue(field, _ISSUES[error["type"]])
    if error["type"] == "value_error":
        return FieldIssue(field, str(error["ctx"]["error"]))
    return FieldIssue(field, str(error["msg"]))


def parse_body(request: Request, model: type[Body]) -> Body:
    raw = request.raw_body or b""
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "The request body is not valid JSON.", [FieldIssue("body", "malformed JSON")]
        ) from exc
    except RecursionError as exc:
        # The standard parser recurses once per level: 200,000 `[` exhaust the stack, not the parser.
        raise InvalidInput(
            "The request body is nested too deeply to be read.", [FieldIssue("body", "nested too deeply")]
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(
            "The request body must be a JSON object.", [FieldIssue("body", "not a JSON object")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("The request is invalid.", [_issue(e) for e in exc.errors()]) from exc


def sent_fields(body: BaseModel, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH actually sent (a field left out is not a field set to null)."""
    return {name: getattr(body, name) for name in body.model_fields_set if name not in exclude}


def portal_principal(request: Request) -> PortalPrincipal:
    """The link holder the portal authorizer put into the request context."""
    context = request.context.get("authorizer") or {}
    try:
        return PortalPrincipal(
            account_id=str(context["account_id"]),
            dossier_id=str(context["dossier_id"]),
            role_id=str(context["role_id"]),
            token_hash="",
            participant_id=str(context.get("participant_id") or "main"),
            generation=int(context.get("generation") or 0),
        )
    except (KeyError, ValueError) as exc:
        raise Unauthenticated("No portal identity on this request.") from exc


def staff_principal(request: Request) -> StaffPrincipal:
    """The principal the staff authorizer put into the request context (strings only, as API Gateway)."""
    context = request.context.get("authorizer") or {}
    try:
        role = Role(context.get("role", ""))
    except ValueError as exc:
        raise Unauthenticated("No staff identity on this request.") from exc
    return StaffPrincipal(
        subject=str(context.get("principalId", "")),
        role=role,
        account_id=context.get("account_id") or None,
    )


def api_url_of(request: Request) -> str | None:
    """The API's address as this request reached it (`https://<host>/<stage>`), for links that must
    lead back to it. None when the request does not say (the settings' RELAIS_API_URL then applies)."""
    headers: Any = request.headers or {}
    host = headers.get("host")
    if not host:
        return None
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip()
    stage = (request.context or {}).get("stage")
    # The execute-api host serves the stage as the first path segment; a custom domain maps it away.
    on_execute_api = host.endswith(".amazonaws.com")
    return f"{scheme}://{host}/{stage}" if on_execute_api and stage else f"{scheme}://{host}"
