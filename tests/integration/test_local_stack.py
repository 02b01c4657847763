"""`make run` in miniature: the embedded stack started in-process on free ports, used over real HTTP."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.local.stack import LocalStack, start


def _call(url: str, method: str = "GET", token: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    from chalicelib import wiring

    saved = dict(os.environ)
    running = start(port=0, moto_port=0, tick_seconds=3600, pump_seconds=0.2)
    try:
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()


def _wait_for_outbox(stack: LocalStack, recipient: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, outbox = _call(f"{stack.api_url}/_local/outbox")
        for message in outbox["messages"]:
            if recipient in message["to"]:
                return dict(message)
        time.sleep(0.2)
    raise AssertionError(f"no email to {recipient} reached the outbox")


def test_the_local_stack_serves_the_api_and_delivers_a_new_accounts_welcome_email(stack: LocalStack) -> None:
    status, demo = _call(f"{stack.api_url}/account", token=stack.admin_token)
    assert status == 200
    assert demo["id"] == stack.demo_account_id

    status, _ = _call(
        f"{stack.api_url}/admin/accounts",
        "POST",
        stack.platform_admin_token,
        {"name": "Cabinet Bernard", "plan": "platinum", "sender_email": "bernard@cabinet.fr"},
    )
    assert status == 201
    welcome = _wait_for_outbox(stack, "bernard@cabinet.fr")
    assert welcome["kind"] == "account_welcome"
    assert welcome["subject"] == "Bienvenue sur Relais, Cabinet Bernard"

    status, manager_view = _call(f"{stack.api_url}/account/settings", "PATCH", stack.manager_token, {})
    assert (status, manager_view["error"]["code"]) == (403, "forbidden")
    assert _call(f"{stack.api_url}/nowhere")[0] == 404
    assert _call(f"{stack.api_url}/account")[0] == 401


def test_the_local_tick_and_drain_routes_answer_what_they_did(stack: LocalStack) -> None:
    status, tick = _call(f"{stack.api_url}/_local/tick", "POST", body={"time": "2030-01-01T00:00:00Z"})
    assert status == 200
    assert set(tick) == {"queued", "processed"}
    assert _call(f"{stack.api_url}/_local/drain", "POST")[1] == {"processed": 0}
    assert _call(f"{stack.api_url}/_local/tick", "POST", body={"time": "yesterday"})[0] == 400


def test_stopping_the_stack_closes_its_ports() -> None:
    from chalicelib import wiring

    saved = dict(os.environ)
    running = start(port=0, moto_port=0, tick_seconds=3600, pump_seconds=0.2)
    try:
        assert _call(f"{running.api_url}/account", token=running.admin_token)[0] == 200
    finally:
        began = time.monotonic()
        running.stop()
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()
    assert time.monotonic() - began < 5
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{running.api_url}/account", timeout=2)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(running.moto_url, timeout=2)
