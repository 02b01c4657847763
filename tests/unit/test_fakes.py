"""The hand-written fakes keep step with the ports they stand for: every method of the port, with the same
parameters, so that a port that grows cannot leave a fake silently behind (mypy does not read the tests)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from chalicelib.services import ports
from chalicelib.services.webhooks import WebhookStore
from tests import fakes

PAIRS = [
    (fakes.FakeAccountRepository, ports.AccountRepository),
    (fakes.FakeCommunicationRepository, ports.CommunicationRepository),
    (fakes.FakeQueue, ports.MessageQueue),
    (fakes.FakeMailer, ports.Mailer),
    (fakes.FakeSuppressionList, ports.SuppressionList),
    (fakes.FakeWebhookStore, WebhookStore),
]


def _methods(cls: type) -> dict[str, list[str]]:
    """Each public method and the names of its parameters (`self` left out)."""
    return {
        name: list(inspect.signature(member).parameters)[1:]
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


@pytest.mark.parametrize(("fake", "port"), PAIRS, ids=[fake.__name__ for fake, _ in PAIRS])
def test_a_fake_has_every_method_of_its_port_with_the_same_parameters(fake: type, port: Any) -> None:
    wanted, offered = _methods(port), _methods(fake)
    assert sorted(set(wanted) - set(offered)) == []
    assert {name: offered[name] for name in wanted} == wanted


def test_every_fake_of_the_module_is_checked_against_a_port() -> None:
    declared = {
        name for name, member in vars(fakes).items() if inspect.isclass(member) and name.startswith("Fake")
    }
    assert declared == {fake.__name__ for fake, _ in PAIRS}
