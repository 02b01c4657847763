"""Settings from the environment, read once per container and checked as a whole.

A missing variable fails loudly with every missing name at once; nothing silently becomes ''.
Values come from `.chalice/config.json` (per stage) in AWS, and from `chalicelib.local` in local mode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache


class Queue(StrEnum):
    """Relais's queues, each `relais-<stage>-<queue>` (`queue_name`), with its DLQ `…-dlq` in infra/."""

    COMMUNICATIONS = "communications"
    """Emails and dunning steps for `communications_worker`."""
    BULK = "bulk"
    """Chunks of bulk changes (and mailing fan-out pages) for `bulk_worker`."""
    SES_EVENTS = "ses-events"
    """Where SES's send, bounce and complaint events arrive (configuration set → EventBridge → SQS)."""
    WEBHOOKS = "webhooks"
    """Events to fan out to the accounts' webhook endpoints, and their deliveries, for `webhook_worker`."""


def stage_resource(stage: str, purpose: str) -> str:
    """`relais-<stage>-<purpose>`: every resource name carries its stage, so that `dev` and `prod` live in one
    AWS account (infra/resources.yaml names them `!Sub relais-${Stage}-<purpose>`)."""
    return f"relais-{stage}-{purpose}"


def queue_name(queue: Queue, stage: str | None = None) -> str:
    """The stage's queue. Without a stage, the process's RELAIS_STAGE: app.py binds its SQS handlers by
    name at import, and `chalice package --stage X` sets stage X's variables before importing app.py."""
    stage = stage or os.environ.get("RELAIS_STAGE")
    if not stage:
        raise ConfigurationError("Missing environment variables: RELAIS_STAGE (queues are named after it)")
    return stage_resource(stage, queue)


class ConfigurationError(RuntimeError):
    pass


MIN_SECRET_BYTES = 32
"""A signing secret shorter than the HMAC-SHA256 output can be brute-forced offline from one signed link."""


@dataclass(frozen=True)
class MailevaSettings:
    base_url: str
    auth_url: str
    client_id: str
    client_secret: str
    username: str
    password: str


_MAILEVA = {
    "base_url": "RELAIS_MAILEVA_BASE_URL",
    "auth_url": "RELAIS_MAILEVA_AUTH_URL",
    "client_id": "RELAIS_MAILEVA_CLIENT_ID",
    "client_secret": "RELAIS_MAILEVA_CLIENT_SECRET",
    "username": "RELAIS_MAILEVA_USERNAME",
    "password": "RELAIS_MAILEVA_PASSWORD",
}


def _maileva(environ: Mapping[str, str]) -> tuple[MailevaSettings | None, list[str]]:
    """All of RELAIS_MAILEVA_* or none: a half-configured provider fails at start, naming what is missing."""
    given = {field: environ.get(name) or "" for field, name in _MAILEVA.items()}
    if not any(given.values()):
        return None, []
    missing = [_MAILEVA[field] for field, value in given.items() if not value]
    return (None, missing) if missing else (MailevaSettings(**given), [])


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    table_name: str
    communications_queue: str
    from_address: str | None
    """Only the functions that send email have it (`sender_address()`)."""
    portal_url: str | None
    """An explicit portal page; by default the API's own `/p` (`portal_page_url`)."""
    api_url: str | None
    """Where the API answers (`https://<host>/<stage>`): set for the workers, whose links point at it;
    the API handler reads it from each request when unset."""
    portal_token_days: int
    jwt_secret: str | None
    """The local stage's plain HS256 secret; a deployed stage names its SSM parameter instead."""
    jwt_secret_parameter: str | None
    jwks_url: str | None
    jwt_issuer: str | None
    jwt_audience: str | None
    ses_configuration_set: str | None
    link_secret: str | None
    """Signs the links that need no login (unsubscribe); rotating it voids every link already sent.
    Only the functions that sign or read such links have it (`signing_secret()`): the local stage as a
    plain value, a deployed stage as the name of its SSM parameter (`link_secret_parameter`)."""
    link_secret_parameter: str | None
    documents_bucket: str
    """Set by the merge template in AWS (its name holds the AWS account id) and by the local stack."""
    maileva: MailevaSettings | None
    """The registered-letter provider of the `provider` channel given in plain variables; a deployed stage
    names the SSM parameter holding them instead (`maileva_parameter`). None: not configured."""
    maileva_parameter: str | None

    def queue(self, queue: Queue) -> str:
        return queue_name(queue, self.stage)

    def sender_address(self) -> str:
        return _required(self.from_address, "RELAIS_FROM_ADDRESS", "this function sends email")

    def signing_secret(self) -> str:
        if self.link_secret_parameter:
            return self._secret_parameter(self.link_secret_parameter)
        return _required(self.link_secret, "RELAIS_LINK_SECRET", "this function signs or reads links")

    def staff_token_secret(self) -> str | None:
        """The HS256 secret of staff tokens, if staff tokens are not Cognito's (RS256 by `jwks_url`)."""
        if self.jwt_secret_parameter:
            return self._secret_parameter(self.jwt_secret_parameter)
        return self.jwt_secret

    def maileva_account(self) -> MailevaSettings | None:
        """Maileva's settings: plain variables, or the SSM parameter's JSON object of the same fields."""
        if not self.maileva_parameter:
            return self.maileva
        try:
            given = json.loads(read_secret_parameter(self.maileva_parameter))
        except ValueError as exc:
            raise ConfigurationError(f"{self.maileva_parameter} is not a JSON object") from exc
        if not isinstance(given, dict):
            raise ConfigurationError(f"{self.maileva_parameter} is not a JSON object")
        missing = [field for field in _MAILEVA if not isinstance(given.get(field), str) or not given[field]]
        if missing:
            raise ConfigurationError(f"{self.maileva_parameter} lacks {', '.join(missing)}")
        return MailevaSettings(**{field: given[field] for field in _MAILEVA})

    def _secret_parameter(self, name: str) -> str:
        secret = read_secret_parameter(name)
        if self.stage != "local" and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"{name} must be at least {MIN_SECRET_BYTES} bytes long")
        return secret


SECRET_MAX_AGE_SECONDS = 300
"""How long a container keeps a secret read from SSM before it asks again (a rotation's delay)."""


def read_secret_parameter(name: str) -> str:
    """A SecureString of SSM Parameter Store, decrypted, through Powertools' cache. A deployed function's
    environment holds only the parameter's name, never the secret."""
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS))


def _required(value: str | None, name: str, why: str) -> str:
    if not value:
        raise ConfigurationError(f"Missing environment variables: {name} ({why})")
    return value


_REQUIRED = (
    "RELAIS_STAGE",
    "RELAIS_TABLE_NAME",
)
"""Every function reads these; the others are required by the functions that use them, at first use,
so that each function's environment holds exactly what its code reads (infra/resources.yaml)."""


def _deployed_issues(environ: Mapping[str, str]) -> list[str]:
    """What a deployed stage must never run with, checked when its settings are first read."""
    issues = []
    for name in ("RELAIS_LINK_SECRET", "RELAIS_JWT_SECRET"):
        secret = environ.get(name) or ""
        if secret and len(secret.encode()) < MIN_SECRET_BYTES:
            issues.append(f"{name} must be at least {MIN_SECRET_BYTES} bytes long")
    if (environ.get("RELAIS_JWKS_URL") or "").startswith("http://"):
        issues.append("RELAIS_JWKS_URL must be an https:// address")
    # Lambda names the function as the template's Stage says (relais-<Stage>-<function>); the code names
    # its table and queues after RELAIS_STAGE, the stage packaged. Both must be the same stage.
    function = environ.get("AWS_LAMBDA_FUNCTION_NAME") or ""
    if function and not function.startswith(stage_resource(environ["RELAIS_STAGE"], "")):
        issues.append(
            f"{function} runs code packaged for the stage {environ['RELAIS_STAGE']}: package and deploy"
            " the same stage (make deploy STAGE=…)"
        )
    return issues


def load_settings(environ: Mapping[str, str]) -> Settings:
    missing = [name for name in _REQUIRED if not environ.get(name)]
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        missing.append("AWS_REGION")
    jwks_url = environ.get("RELAIS_JWKS_URL") or None
    if jwks_url:
        missing += [n for n in ("RELAIS_JWT_ISSUER", "RELAIS_JWT_AUDIENCE") if not environ.get(n)]
    maileva, missing_maileva = _maileva(environ)
    missing += missing_maileva
    if missing:
        raise ConfigurationError(f"Missing environment variables: {', '.join(missing)}")
    issues = _deployed_issues(environ) if environ["RELAIS_STAGE"] != "local" else []
    if issues:
        raise ConfigurationError("Unsafe settings for a deployed stage: " + "; ".join(issues))
    try:
        token_days = int(environ.get("RELAIS_PORTAL_TOKEN_DAYS", "30"))
    except ValueError as exc:
        raise ConfigurationError("RELAIS_PORTAL_TOKEN_DAYS must be a whole number of days") from exc
    return Settings(
        stage=environ["RELAIS_STAGE"],
        region=str(region),
        table_name=environ["RELAIS_TABLE_NAME"],
        communications_queue=queue_name(Queue.COMMUNICATIONS, environ["RELAIS_STAGE"]),
        from_address=environ.get("RELAIS_FROM_ADDRESS") or None,
        portal_url=environ.get("RELAIS_PORTAL_URL") or None,
        api_url=(environ.get("RELAIS_API_URL") or "").rstrip("/") or None,
        portal_token_days=token_days,
        jwt_secret=environ.get("RELAIS_JWT_SECRET") or None,
        jwt_secret_parameter=environ.get("RELAIS_JWT_SECRET_PARAMETER") or None,
        jwks_url=jwks_url,
        jwt_issuer=environ.get("RELAIS_JWT_ISSUER") or None,
        jwt_audience=environ.get("RELAIS_JWT_AUDIENCE") or None,
        ses_configuration_set=environ.get("RELAIS_SES_CONFIGURATION_SET") or None,
        link_secret=environ.get("RELAIS_LINK_SECRET") or None,
        link_secret_parameter=environ.get("RELAIS_LINK_SECRET_PARAMETER") or None,
        documents_bucket=environ.get("RELAIS_DOCUMENTS_BUCKET")
        or stage_resource(
            environ["RELAIS_STAGE"], f"documents-{environ.get('RELAIS_AWS_ACCOUNT_ID', 'local')}"
        ),
        maileva=maileva,
        maileva_parameter=environ.get("RELAIS_MAILEVA_PARAMETER") or None,
    )


def portal_page_url(config: Settings, api_url: str | None = None) -> str:
    """The page invitation links open: RELAIS_PORTAL_URL, else `/p` on the API's own host."""
    if config.portal_url:
        return config.portal_url
    base = api_url or config.api_url
    if not base:
        raise ConfigurationError("Set RELAIS_API_URL (or RELAIS_PORTAL_URL) to build portal links")
    return f"{base.rstrip('/')}/p"


@cache
def settings() -> Settings:
    return load_settings(os.environ)
