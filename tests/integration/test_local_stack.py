"""`make run` in miniature: the embedded stack started in-process on free ports, used over real HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.local.stack import LocalStack
from tests.support import http_call, local_stack


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with local_stack() as running:
        yield running


def _wait_for_outbox(stack: LocalStack, recipient: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, outbox = http_call(f"{stack.api_url}/_local/outbox")
        for message in outbox["messages"]:
            if recipient in message["to"]:
                return dict(message)
        time.sleep(0.2)
    raise AssertionError(f"no email to {recipient} reached the outbox")


def test_the_local_stack_serves_the_api_and_delivers_a_new_accounts_welcome_email(stack: LocalStack) -> None:
    status, demo = http_call(f"{stack.api_url}/account", token=stack.admin_token)
    assert status == 200
    assert demo["id"] == stack.demo_account_id

    status, _ = http_call(
        f"{stack.api_url}/admin/accounts",
        "POST",
        stack.platform_admin_token,
        {"name": "Cabinet Bernard", "plan": "platinum", "sender_email": "bernard@cabinet.fr"},
    )
    assert status == 201
    welcome = _wait_for_outbox(stack, "bernard@cabinet.fr")
    assert welcome["kind"] == "account_welcome"
    assert welcome["subject"] == "Bienvenue sur Relais, Cabinet Bernard"

    status, manager_view = http_call(f"{stack.api_url}/account/settings", "PATCH", stack.manager_token, {})
    assert (status, manager_view["error"]["code"]) == (403, "forbidden")
    assert http_call(f"{stack.api_url}/nowhere")[0] == 404
    assert http_call(f"{stack.api_url}/account")[0] == 401


def test_the_local_tick_and_drain_routes_answer_what_they_did(stack: LocalStack) -> None:
    status, tick = http_call(f"{stack.api_url}/_local/tick", "POST", body={"time": "2030-01-01T00:00:00Z"})
    assert status == 200
    assert set(tick) == {"queued", "processed"}
    assert http_call(f"{stack.api_url}/_local/drain", "POST")[1] == {"processed": 0}
    assert http_call(f"{stack.api_url}/_local/tick", "POST", body={"time": "yesterday"})[0] == 400


def test_stopping_the_stack_closes_its_ports() -> None:
    with local_stack() as running:
        assert http_call(f"{running.api_url}/account", token=running.admin_token)[0] == 200
        began = time.monotonic()
    # Leaving the block stopped the stack and restored the environment.
    assert time.monotonic() - began < 5
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{running.api_url}/account", timeout=2)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(running.moto_url, timeout=2)


def _multipart(fields: dict[str, str], filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = "relais-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_full_document_collection_flows_from_procedure_to_approval_over_http(stack: LocalStack) -> None:
    api, admin = stack.api_url, stack.admin_token
    assert http_call(f"{api}/account/trials", "POST", admin, {"feature": "contributors"})[0] in (201, 409)
    status, procedure = http_call(
        f"{api}/procedures", "POST", admin, {"name": "Demande de location", "main_role_name": "Locataire"}
    )
    assert status == 201
    pid = procedure["id"]
    status, garant = http_call(f"{api}/procedures/{pid}/roles", "POST", admin, {"name": "Garant"})
    assert status == 201
    status, document = http_call(
        f"{api}/procedures/{pid}/documents",
        "POST",
        admin,
        {"label": "Bulletins de salaire", "role_id": garant["id"]},
    )
    assert status == 201
    status, dossier = http_call(
        f"{api}/dossiers",
        "POST",
        admin,
        {"procedure_id": pid, "recipient": {"name": "Léa", "email": "lea@exemple.fr"}},
    )
    assert status == 201
    status, _ = http_call(
        f"{api}/dossiers/{dossier['id']}/contributors",
        "POST",
        admin,
        {"role_id": garant["id"], "name": "Paul Garant", "email": "paul@exemple.fr", "notify": True},
    )
    assert status == 201
    invitation = _wait_for_outbox(stack, "paul@exemple.fr")
    assert invitation["kind"] == "contributor_invited"
    secret = invitation["text"].split("#token=")[1].split()[0]
    status, portal = http_call(f"{api}/portal", token=secret)
    assert status == 200
    assert [d["label"] for d in portal["documents"]] == ["Bulletins de salaire"]
    pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"
    status, upload = http_call(
        f"{api}/portal/documents/{document['id']}/uploads",
        "POST",
        secret,
        {"filename": "paie.pdf", "content_type": "application/pdf", "size": len(pdf)},
    )
    assert status == 201
    body, content_type = _multipart(upload["fields"], "paie.pdf", pdf, "application/pdf")
    request = urllib.request.Request(upload["url"], data=body, method="POST")
    request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201, 204)
    status, completed = http_call(
        f"{api}/portal/documents/{document['id']}/uploads/{upload['upload_id']}/complete", "POST", secret
    )
    assert (status, completed["status"]) == (200, "pending_review")
    status, reviewed = http_call(
        f"{api}/dossiers/{dossier['id']}/documents/{document['id']}/review",
        "POST",
        admin,
        {"decision": "approve"},
    )
    assert (status, reviewed["status"], reviewed["dossier_status"]) == (200, "approved", "completed")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_a_method_no_route_has_is_refused_with_405_in_the_error_shape(stack: LocalStack, method: str) -> None:
    request = urllib.request.Request(f"{stack.api_url}/account", method=method)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405
    assert refused.value.headers["Content-Type"] == "application/json"
    assert json.loads(refused.value.read())["error"]["code"] == "method_not_allowed"
    assert "GET" in refused.value.headers["Allow"]
