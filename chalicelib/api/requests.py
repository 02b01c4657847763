"""Parsing at the edge: JSON bodies into strict pydantic models, errors into `validation_error` details."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, TypeVar, get_args

from chalice.app import Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

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

DATE_ISSUE = "must be a date written YYYY-MM-DD"
TIMESTAMP_ISSUE = "must be a date and time with its offset, such as 2027-03-11T08:00:00Z"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")


def _calendar_date(value: Any) -> date:
    """Pydantic's lax dates also take a midnight timestamp or a number of seconds; API.md says
    `YYYY-MM-DD`, and a date that arrives as anything else is more likely a mistake than a date."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(DATE_ISSUE)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{DATE_ISSUE}, and be a day of the calendar") from exc


def _timestamp(value: Any) -> datetime:
    """ISO 8601 with its offset (`Z` or `±hh:mm`), never a bare number of seconds."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise ValueError(TIMESTAMP_ISSUE)
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(TIMESTAMP_ISSUE) from exc


CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
"""A day, written `YYYY-MM-DD` and nothing else."""
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
"""A moment, ISO 8601 with its offset."""


class StrictBody(BaseModel):
    """Unknown fields are refused: a typo must not pass silently as 'nothing to change'. An optional
    field may be left out, but a field that is sent may not be null, except the ones named in
    `nullable` (as openapi.yaml marks them), where null means "none". Lax mode lets JSON strings fill
    enums; booleans are declared StrictBool where 1 or "yes" must fail."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    nullable: ClassVar[frozenset[str]] = frozenset()


class PatchBody(StrictBody):
    """A partial update: every field may be left out; null, where `nullable` allows it, removes the value."""


def _model_in(annotation: Any) -> type[StrictBody] | None:
    """The body model a field holds (through `X | None` and `Annotated[...]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, StrictBody):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _sent_nulls(model: type[StrictBody], data: Any, prefix: str = "") -> list[FieldIssue]:
    """Every null sent where the model does not allow one, named by its full path."""
    if not isinstance(data, dict):
        return []
    issues = []
    for name, value in data.items():
        field = model.model_fields.get(name)
        if field is None:
            continue
        if value is None:
            if name not in model.nullable:
                issues.append(FieldIssue(f"{prefix}{name}", "must not be null"))
            continue
        nested = _model_in(field.annotation)
        if nested is not None:
            issues += _sent_nulls(nested, value, f"{prefix}{name}.")
    return issues


Body = TypeVar("Body", bound=BaseModel)

_ISSUES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "decimal_type": "must be a decimal number",
    "decimal_parsing": "must be a decimal number",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "frozen_set_type": "must be a list",
    "date_type": DATE_ISSUE,
    "date_parsing": DATE_ISSUE,
    "date_from_datetime_parsing": DATE_ISSUE,
    "date_from_datetime_inexact": DATE_ISSUE,
    "datetime_type": TIMESTAMP_ISSUE,
    "datetime_parsing": TIMESTAMP_ISSUE,
    "datetime_from_date_parsing": TIMESTAMP_ISSUE,
    "timezone_aware": TIMESTAMP_ISSUE,
    "string_pattern_mismatch": "is not written in the expected form",
    "url_type": "must be a URL",
    "url_parsing": "must be a URL",
    "url_scheme": "must be a URL",
    "recursion_loop": "is nested too deeply",
}
"""Pydantic's wording names its own types ("instance of MoneyBody"): each kind of error gets ours."""

_BOUNDED_ISSUES = {
    "string_too_short": ("must be at least {min_length} character{s} long", "min_length"),
    "string_too_long": ("must be at most {max_length} character{s} long", "max_length"),
    "too_short": ("must hold at least {min_length} item{s}", "min_length"),
    "too_long": ("must hold at most {max_length} item{s}", "max_length"),
    "greater_than": ("must be greater than {gt}", "gt"),
    "greater_than_equal": ("must be {ge} or more", "ge"),
    "less_than": ("must be less than {lt}", "lt"),
    "less_than_equal": ("must be {le} or less", "le"),
    "enum": ("must be one of {expected}", "expected"),
    "literal_error": ("must be one of {expected}", "expected"),
}


def _issue(error: Any) -> FieldIssue:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    kind, context = error["type"], error.get("ctx") or {}
    if kind in _ISSUES:
        return FieldIssue(field, _ISSUES[kind])
    if kind in ("value_error", "assertion_error") and "error" in context:
        return FieldIssue(field, str(context["error"]))
    if kind in _BOUNDED_ISSUES:
        template, bound = _BOUNDED_ISSUES[kind]
        plural = "" if str(context.get(bound)) == "1" else "s"
        return FieldIssue(field, template.format(s=plural, **context))
    return FieldIssue(field, "is not valid here")


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
    nulls = _sent_nulls(model, data) if issubclass(model, StrictBody) else []
    if nulls:
        raise InvalidInput("The request is invalid.", nulls)
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
