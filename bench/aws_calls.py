"""How many AWS calls each API operation and event handler makes: each call is latency, cost and an IAM grant.

Calls are counted by a botocore `before-call` handler appended to `botocore.handlers.BUILTIN_HANDLERS`, the
way moto registers its stubber: every botocore session created afterwards carries it, including the ones
PynamoDB builds for itself, which a hook on the container's boto3 session would miss.

Each operation runs twice on moto's in-process mock: first in a fresh container (`wiring.reset()`: new
sessions, queue URL not looked up yet, as after a Lambda cold start), then again in the same container (the
steady state, which is the figure). Setting up (provisioning, accounts) is not counted. The worker's calls
per email are `bench.worker_calls`'s, for every kind of email.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS
from jwt.warnings import InsecureKeyLengthWarning
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from bench.environment import local_stage
from bench.figures import Figure
from chalicelib import wiring
from chalicelib.local.provision import provision
from chalicelib.local.stack import REGION
from chalicelib.observability import logger
from tests.support import Answer, Api, RelaisTestClient, token

Call = tuple[str, str]
"""(service, operation), e.g. ("dynamodb", "PutItem")."""

Attempt = Callable[[int], None]
"""Runs an operation once; its argument is 0 for the cold run and 1 for the warm one."""


class CallCounter:
    def __init__(self) -> None:
        self._calls: Counter[Call] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        # Returns None on purpose: a value returned by a before-call handler would replace AWS's answer.
        self._calls[(model.service_model.service_name, model.name)] += 1

    def take(self) -> Counter[Call]:
        """The calls counted since the last take, in the order first made; counting restarts from zero."""
        taken, self._calls = self._calls, Counter()
        return taken

    @contextmanager
    def ignoring(self) -> Iterator[None]:
        """The calls made inside are not counted: another party's (a browser's POST to S3)."""
        kept = self.take()
        try:
            yield
        finally:
            self._calls = kept


COUNTER = CallCounter()
_HOOK = ("before-call.*.*", COUNTER)


@dataclass(frozen=True)
class Measure:
    operation: str
    cold: Counter[Call]
    warm: Counter[Call]

    def breakdown(self) -> str:
        """The warm calls, then what the cold run made more or fewer of."""
        text = _calls(self.warm)
        if self.cold - self.warm:
            text += f"  (cold +{_calls(self.cold - self.warm)})"
        if self.warm - self.cold:
            text += f"  (cold -{_calls(self.warm - self.cold)})"
        return text


def _calls(calls: Counter[Call]) -> str:
    return " ".join(f"{service}:{operation}×{count}" for (service, operation), count in calls.items()) or "-"


def run() -> list[Figure]:
    if _HOOK not in BUILTIN_HANDLERS:
        # Before any session exists in the measured code: a session reads the list once, when created.
        BUILTIN_HANDLERS.append(_HOOK)
    with local_stage(), _quiet():
        measures = _measure_all()
    return [
        Figure(
            name=f"aws_calls.{m.operation}",
            value=sum(m.warm.values()),
            target=None,
            better="lower",
            unit="calls",
            issue=2,
            detail=m.breakdown(),
        )
        for m in measures
    ]


@contextmanager
def _quiet() -> Iterator[None]:
    """The app's INFO lines and PyJWT's warning about the short local secret would bury the table."""
    level = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            yield
    finally:
        logger.setLevel(level)


def _measure_all() -> list[Measure]:
    with mock_aws():
        wiring.reset()
        provision(wiring.container().client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
        if not COUNTER.take():
            raise RuntimeError("the before-call hook saw no call while provisioning: calls cannot be counted")
        operations = _operations(RelaisTestClient())
        measures = [_measure(name, attempt) for name, attempt in operations.items()]
        wiring.reset()
    return measures


def _measure(operation: str, attempt: Attempt) -> Measure:
    wiring.reset()
    COUNTER.take()
    attempt(0)
    cold = COUNTER.take()
    attempt(1)
    return Measure(operation, cold, COUNTER.take())


def _operations(client: RelaisTestClient) -> dict[str, Attempt]:
    """Sets up what each operation needs (two of it where a second run could not repeat the first),
    and returns the operations by the name their figures take."""
    platform = Api(client, token("platform_admin"))
    cabinet = _open_account(platform, "premium")
    admin = platform.as_(token("admin", cabinet))
    trial_admins = [platform.as_(token("admin", _open_account(platform, "essential"))) for _ in range(2)]

    def open_account(attempt: int) -> None:
        _open_account(platform, "premium")

    def change_plan(attempt: int) -> None:
        _expect(platform.patch(f"/admin/accounts/{cabinet}", {"plan": ("platinum", "premium")[attempt]}), 200)

    def read_account(attempt: int) -> None:
        _expect(admin.get("/account"), 200)

    def change_settings(attempt: int) -> None:
        _expect(admin.patch("/account/settings", {"partner_communications_enabled": attempt == 0}), 200)

    def start_trial(attempt: int) -> None:
        _expect(trial_admins[attempt].post("/account/trials", {"feature": "contributors"}), 201)

    return {
        "POST /admin/accounts": open_account,
        "PATCH /admin/accounts/{id}": change_plan,
        "GET /account": read_account,
        "PATCH /account/settings": change_settings,
        "POST /account/trials": start_trial,
    }


def _open_account(platform: Api, plan: str) -> str:
    body = {"name": "Cabinet Banc d'Essai", "plan": plan, "sender_email": "contact@banc.example"}
    return str(_expect(platform.post("/admin/accounts", body), 201)["id"])


def _expect(answer: Answer, status: int) -> Any:
    """A refused call would count the calls of an error path: stop instead of measuring it."""
    if answer.status != status:
        raise RuntimeError(f"expected {status}, got {answer.status}: {answer.body}")
    return answer.body
