"""Builds the adapters lazily, once per container (Lambda container or local process), and lets tests
swap any of them. Nothing here runs at import: the first use creates what it needs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.config import (
    ConfigurationError,
    Queue,
    Settings,
    portal_page_url,
    settings,
)
from chalicelib.services.identity import StaffTokenVerifier
from chalicelib.services.portal_links import DossierEmailLinks
from chalicelib.services.ports import Mailer, RegisteredMail
from chalicelib.services.unsubscribe import UnsubscribeLinkMaker

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.audit import DynamoAuditTrail
    from chalicelib.adapters.dynamodb.deadlines import DynamoDeadlineRepository
    from chalicelib.adapters.dynamodb.dossiers import DynamoDossierRepository, DynamoProcedureRepository
    from chalicelib.adapters.dynamodb.due_steps import DynamoDueSteps
    from chalicelib.adapters.dynamodb.dunning import DynamoDunningPolicyRepository
    from chalicelib.adapters.dynamodb.event_erasure import DynamoEventEraser
    from chalicelib.adapters.dynamodb.events import DynamoActivityLog
    from chalicelib.adapters.dynamodb.jobs import DynamoJobRepository
    from chalicelib.adapters.dynamodb.logos import DynamoLogoStore
    from chalicelib.adapters.dynamodb.mailings import DynamoMailingRepository
    from chalicelib.adapters.dynamodb.partners import DynamoPartnerRepository
    from chalicelib.adapters.dynamodb.repositories import (
        DynamoAccountRepository,
        DynamoCommunicationRepository,
        DynamoPortalTokenRepository,
    )
    from chalicelib.adapters.dynamodb.scheduled import DynamoScheduledRepository
    from chalicelib.adapters.dynamodb.suppressions import DynamoSuppressionRepository
    from chalicelib.adapters.dynamodb.unsubscriptions import DynamoUnsubscriptionRepository
    from chalicelib.adapters.dynamodb.webhooks import DynamoWebhookStore
    from chalicelib.adapters.s3 import S3Documents
    from chalicelib.adapters.sqs import SqsQueue
    from chalicelib.domain.letters import FormalNoticeLetter
    from chalicelib.services.dossiers import Context as DossierContext
    from chalicelib.services.dunning import DunningContext
    from chalicelib.services.webhooks import WebhookTransport

IDEMPOTENCY_SHARDS = 16
"""Idempotency records spread over this many partitions per store (see adapters/idempotency.py)."""


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Container:
    def __init__(self, config: Settings) -> None:
        self.settings = config
        self.clock: Callable[[], datetime] = utc_now
        self._lock = threading.Lock()
        self._session: Any = None
        from chalicelib.adapters.dynamodb import models

        models.bind(config.table_name, config.region)

    def now(self) -> datetime:
        return self.clock()

    def client(self, service: str) -> Any:
        """One boto3 session per container; clients are thread-safe, their creation is not."""
        import boto3

        with self._lock:
            if self._session is None:
                self._session = boto3.session.Session(region_name=self.settings.region)
            return self._session.client(service)

    @cached_property
    def accounts(self) -> DynamoAccountRepository:
        from chalicelib.adapters.dynamodb.repositories import DynamoAccountRepository

        return DynamoAccountRepository()

    @cached_property
    def logos(self) -> DynamoLogoStore:
        from chalicelib.adapters.dynamodb.logos import DynamoLogoStore

        return DynamoLogoStore()

    @cached_property
    def communications(self) -> DynamoCommunicationRepository:
        from chalicelib.adapters.dynamodb.repositories import DynamoCommunicationRepository

        return DynamoCommunicationRepository()

    @cached_property
    def portal_tokens(self) -> DynamoPortalTokenRepository:
        from chalicelib.adapters.dynamodb.repositories import DynamoPortalTokenRepository

        return DynamoPortalTokenRepository()

    @cached_property
    def dunning_policies(self) -> DynamoDunningPolicyRepository:
        from chalicelib.adapters.dynamodb.dunning import DynamoDunningPolicyRepository

        return DynamoDunningPolicyRepository()

    @cached_property
    def suppressions(self) -> DynamoSuppressionRepository:
        from chalicelib.adapters.dynamodb.suppressions import DynamoSuppressionRepository

        return DynamoSuppressionRepository()

    @cached_property
    def unsubscriptions(self) -> DynamoUnsubscriptionRepository:
        from chalicelib.adapters.dynamodb.unsubscriptions import DynamoUnsubscriptionRepository

        return DynamoUnsubscriptionRepository()

    @cached_property
    def partners(self) -> DynamoPartnerRepository:
        from chalicelib.adapters.dynamodb.partners import DynamoPartnerRepository

        return DynamoPartnerRepository()

    @cached_property
    def jobs(self) -> DynamoJobRepository:
        from chalicelib.adapters.dynamodb.jobs import DynamoJobRepository

        return DynamoJobRepository()

    @cached_property
    def bulk_queue(self) -> SqsQueue:
        from chalicelib.adapters.sqs import SqsQueue

        return SqsQueue(self.client("sqs"), self.settings.queue(Queue.BULK))

    @cached_property
    def procedures(self) -> DynamoProcedureRepository:
        from chalicelib.adapters.dynamodb.dossiers import DynamoProcedureRepository

        return DynamoProcedureRepository()

    @cached_property
    def dossiers(self) -> DynamoDossierRepository:
        from chalicelib.adapters.dynamodb.dossiers import DynamoDossierRepository

        return DynamoDossierRepository()

    def dossier_context(self, api_url: str | None = None) -> DossierContext:
        """What the dossier use cases need, as of now (a new clock reading per request or event).
        `api_url`: the API's address as the request reached it (links then point at that host)."""
        from chalicelib.services.dossiers import Context

        return Context(
            accounts=self.accounts,
            procedures=self.procedures,
            dossiers=self.dossiers,
            queue=self.communications_queue,
            webhooks=self.webhooks_queue,
            portal_url=portal_page_url(self.settings, api_url),
            token_days=self.settings.portal_token_days,
            now=self.now(),
            link_secret=self.settings.signing_secret,
        )

    @cached_property
    def scheduled(self) -> DynamoScheduledRepository:
        from chalicelib.adapters.dynamodb.scheduled import DynamoScheduledRepository

        return DynamoScheduledRepository()

    def dunning_context(self) -> DunningContext:
        from chalicelib.services.dunning import DunningContext

        return DunningContext(
            accounts=self.accounts,
            policies=self.dunning_policies,
            partners=self.partners,
            scheduled=self.scheduled,
            queue=self.communications_queue,
            now=self.now(),
            letters=self.documents,
            render_letter=render_letter,
            registered_mail=self.registered_mail,
            webhooks=self.webhooks_queue,
        )

    @cached_property
    def registered_mail(self) -> RegisteredMail | None:
        """The `provider` channel's service: Maileva where its settings are given (RELAIS_MAILEVA_*, or its
        SSM parameter RELAIS_MAILEVA_PARAMETER), else none (letters on that channel then stay `to_send`,
        with the reason). The local stack puts its simulated one here."""
        maileva = self.settings.maileva_account()
        if maileva is None:
            return None
        from chalicelib.adapters.maileva import MailevaRegisteredMail

        return MailevaRegisteredMail(
            base_url=maileva.base_url,
            auth_url=maileva.auth_url,
            client_id=maileva.client_id,
            client_secret=maileva.client_secret,
            username=maileva.username,
            password=maileva.password,
        )

    @cached_property
    def due_steps(self) -> DynamoDueSteps:
        from chalicelib.adapters.dynamodb.due_steps import DynamoDueSteps

        return DynamoDueSteps()

    @cached_property
    def deadlines(self) -> DynamoDeadlineRepository:
        from chalicelib.adapters.dynamodb.deadlines import DynamoDeadlineRepository

        return DynamoDeadlineRepository()

    @cached_property
    def portal_links(self) -> DossierEmailLinks:
        return DossierEmailLinks(portal_page_url(self.settings), self.settings.signing_secret())

    @cached_property
    def unsubscribe_links(self) -> UnsubscribeLinkMaker:
        if not self.settings.api_url:
            raise ConfigurationError("Set RELAIS_API_URL: mailings carry unsubscribe links to the API")
        return UnsubscribeLinkMaker(self.settings.api_url, self.settings.signing_secret())

    @cached_property
    def mailings(self) -> DynamoMailingRepository:
        from chalicelib.adapters.dynamodb.mailings import DynamoMailingRepository

        return DynamoMailingRepository()

    @cached_property
    def documents(self) -> S3Documents:
        from chalicelib.adapters.s3 import S3Documents

        return S3Documents(self.client("s3"), self.settings.documents_bucket)

    @cached_property
    def communications_queue(self) -> SqsQueue:
        from chalicelib.adapters.sqs import SqsQueue

        return SqsQueue(self.client("sqs"), self.settings.communications_queue)

    @cached_property
    def mailer(self) -> Mailer:
        return self.ses_mailer

    @cached_property
    def ses_mailer(self) -> Mailer:
        from chalicelib.adapters.ses import SesMailer

        return SesMailer(
            self.client("sesv2"), self.settings.sender_address(), self.settings.ses_configuration_set
        )

    @cached_property
    def ses_events_queue(self) -> SqsQueue:
        from chalicelib.adapters.sqs import SqsQueue

        return SqsQueue(self.client("sqs"), self.settings.queue(Queue.SES_EVENTS))

    @cached_property
    def webhooks_queue(self) -> SqsQueue:
        from chalicelib.adapters.sqs import SqsQueue

        return SqsQueue(self.client("sqs"), self.settings.queue(Queue.WEBHOOKS))

    @cached_property
    def audit_trail(self) -> DynamoAuditTrail:
        from chalicelib.adapters.dynamodb.audit import DynamoAuditTrail

        return DynamoAuditTrail()

    @cached_property
    def activity(self) -> DynamoActivityLog:
        from chalicelib.adapters.dynamodb.events import DynamoActivityLog

        return DynamoActivityLog()

    @cached_property
    def contract_event_eraser(self) -> DynamoEventEraser:
        from chalicelib.adapters.dynamodb.event_erasure import DynamoEventEraser

        return DynamoEventEraser()

    @cached_property
    def webhooks(self) -> DynamoWebhookStore:
        from chalicelib.adapters.dynamodb.webhooks import DynamoWebhookStore

        return DynamoWebhookStore()

    @cached_property
    def webhook_transport(self) -> WebhookTransport:
        """Signed POSTs to the endpoints, each address checked and the checked IP connected to; tests swap
        it."""
        from chalicelib.adapters.webhook_http import PinnedHttpTransport

        return PinnedHttpTransport(local_stage=self.settings.stage == "local")

    @cached_property
    def webhook_url_check(self) -> Callable[[str], str]:
        """An endpoint's URL as created or changed: the URL rules, then the addresses its host resolves to
        now (a name resolving into a private range is a 400 naming `url`, as a literal address is)."""
        from chalicelib.adapters.webhook_http import PinnedHttpTransport

        return PinnedHttpTransport(local_stage=self.settings.stage == "local").check_url_resolves

    def _idempotency_store(self, partition: str) -> Any:
        from chalicelib.adapters.idempotency import ShardedDynamoDBPersistenceLayer

        return ShardedDynamoDBPersistenceLayer(
            shards=IDEMPOTENCY_SHARDS,
            table_name=self.settings.table_name,
            key_attr="PK",
            sort_key_attr="SK",
            static_pk_value=partition,
            expiry_attr="ttl",
            boto3_client=self.client("dynamodb"),
        )

    @cached_property
    def request_idempotency_store(self) -> Any:
        """Replays of creating POSTs sent with an `Idempotency-Key` header (the API)."""
        return self._idempotency_store("IDEMPOTENCY#requests")

    @cached_property
    def staff_tokens(self) -> StaffTokenVerifier:
        jwks = None
        if self.settings.jwks_url:
            import jwt

            jwks = jwt.PyJWKClient(self.settings.jwks_url, cache_keys=True, lifespan=600, timeout=5)
        return StaffTokenVerifier(
            secret=self.settings.staff_token_secret(),
            jwks=jwks,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )


def render_letter(letter: FormalNoticeLetter) -> bytes:
    """The letter's PDF. The PDF library is imported here, at the first letter, so that only the worker
    that prepares letters ever loads it (never `api_handler`)."""
    from chalicelib.adapters.letter_pdf import render_formal_notice

    return render_formal_notice(letter)


_container: Container | None = None
_container_lock = threading.Lock()
_build: Callable[[Settings], Container] = Container


def use_container(build: Callable[[Settings], Container]) -> None:
    """How the next containers are built. The local stack (`chalicelib.local`) puts its stand-ins in this
    way, so that no deployed function carries a path to local code."""
    global _build
    with _container_lock:
        _build = build


def container() -> Container:
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                _container = _build(settings())
    return _container


def reset() -> None:
    """Forget every adapter and re-read the settings (tests, and the local stack at start)."""
    global _container
    with _container_lock:
        _container = None
        settings.cache_clear()
