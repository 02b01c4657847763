"""Shared fixtures. The environment is the local stage's, set before `app` is ever imported;
every AWS call goes to moto (no test reaches real AWS)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chalicelib.local.stack import REGION, local_environment

_environment = local_environment(moto_url="")
_environment.pop("AWS_ENDPOINT_URL")
os.environ.update(_environment)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture
def aws() -> Iterator[object]:
    """A fresh moto AWS with every resource of infra/resources.yaml, and adapters built against it."""
    from moto import mock_aws
    from moto.core.models import DEFAULT_ACCOUNT_ID

    from chalicelib import wiring
    from chalicelib.local.provision import provision

    with mock_aws():
        wiring.reset()
        services = wiring.container()
        provision(services.client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
        yield services
        wiring.reset()


@pytest.fixture
def webhooks_left_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """`drain()` without the webhook worker: the events announced stay on the webhooks queue, for tests of
    what is announced (tests/announced.py) rather than of what is delivered."""
    from chalicelib.local import pumps

    every = pumps._handlers
    monkeypatch.setattr(pumps, "_handlers", lambda: [h for h in every() if h[1] != "webhook_worker"])
