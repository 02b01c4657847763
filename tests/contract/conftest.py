"""The same contract suite runs against the fake and the DynamoDB repositories (under moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes import FakeAccountRepository, FakeCommunicationRepository


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(accounts, communications) repositories of one kind."""
    if request.param == "fake":
        yield FakeAccountRepository(), FakeCommunicationRepository()
        return
    services = request.getfixturevalue("aws")
    yield services.accounts, services.communications
