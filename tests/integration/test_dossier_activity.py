"""A dossier's events through the HTTP API: each change is one event in the dossier's activity, with who
made it, and one message on the webhooks queue; a replayed request or a change that lost its version race
reports nothing twice. The activity logs of dossiers and contracts page oldest first, for the account's
staff only."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.dynamodb.dossiers import DynamoDossierRepository
from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.domain.events import Event, EventType, Subject, SubjectKind
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, token

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"
MANAGER = {"kind": "staff", "id": "user-manager", "name": ""}
ADMIN = {"kind": "staff", "id": "user-admin", "name": ""}


def _ok(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body) if answer.body else {}


def _open(platform: Api, name: str = "Cabinet Martin") -> tuple[Api, str]:
    body = {"name": name, "plan": "platinum", "sender_email": "contact@martin.fr"}
    account_id = _ok(platform.post("/admin/accounts", body))["id"]
    drain()
    return platform.as_(token("manager", account_id)), account_id


def _announced(aws: Any) -> list[dict[str, Any]]:
    """Every message waiting on the webhooks queue, taken off it (as the webhook worker would)."""
    sqs, url = aws.client("sqs"), aws.webhooks_queue.url
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _activity(staff: Api, dossier_id: str) -> list[dict[str, Any]]:
    return list(_ok(staff.get(f"/dossiers/{dossier_id}/activity?limit=200"), 200)["items"])


class Trail:
    """The dossier's activity as a test walks through it: what each action added, checked against what
    the webhooks queue received."""

    def __init__(self, staff: Api, aws: Any, dossier_id: str) -> None:
        self.staff, self.aws, self.dossier_id = staff, aws, dossier_id
        self.seen = 0

    def after(self, action: Callable[[], Any]) -> list[dict[str, Any]]:
        action()
        entries = _activity(self.staff, self.dossier_id)
        added, self.seen = entries[self.seen :], len(entries)
        messages = _announced(self.aws)  # a standard queue keeps no order: compare by event id
        assert sorted((m["id"], m["type"], m["actor"], m["data"]) for m in messages) == sorted(
            (e["id"], e["type"], e["actor"], e["data"]) for e in added
        )
        assert all(m["subject"] == {"kind": "dossier", "id": self.dossier_id} for m in messages)
        return added


@pytest.fixture
def rental(platform: Api, aws: Any) -> dict[str, Any]:
    """Locataire (main) and Garant (may invite), one document each, and an Employeur role."""
    staff, account_id = _open(platform)
    pid = _ok(staff.post("/procedures", {"name": "Demande de location", "main_role_name": "Locataire"}))["id"]
    garant = _ok(
        staff.post(f"/procedures/{pid}/roles", {"name": "Garant", "permissions": {"can_invite": True}})
    )["id"]
    employeur = _ok(staff.post(f"/procedures/{pid}/roles", {"name": "Employeur"}))["id"]
    identite = _ok(staff.post(f"/procedures/{pid}/documents", {"label": "Pièce d'identité"}))["id"]
    salaires = _ok(
        staff.post(f"/procedures/{pid}/documents", {"label": "Bulletins de salaire", "role_id": garant})
    )["id"]
    _announced(aws)
    return {
        "staff": staff,
        "account_id": account_id,
        "platform": platform,
        "pid": pid,
        "garant": garant,
        "employeur": employeur,
        "identite": identite,
        "salaires": salaires,
    }


def _new_dossier(r: dict[str, Any], key: str | None = None) -> Any:
    body = {
        "procedure_id": r["pid"],
        "recipient": {"name": "Léa Martin", "email": "lea@exemple.fr"},
        "reference": "LOC-1",
    }
    return r["staff"].post("/dossiers", body, headers={"Idempotency-Key": key} if key else None)


@pytest.fixture
def opened(rental: dict[str, Any], aws: Any, anonymous: Api) -> dict[str, Any]:
    """A dossier with its garant invited, the webhooks queue emptied."""
    staff = rental["staff"]
    dossier = _ok(_new_dossier(rental))
    garant = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": rental["garant"], "name": "Paul Garant", "email": "paul@exemple.fr"},
        )
    )
    trail = Trail(staff, aws, dossier["id"])
    trail.after(lambda: None)
    return {
        **rental,
        "did": dossier["id"],
        "trail": trail,
        "garant_id": garant["id"],
        "locataire": anonymous.as_(dossier["portal_link"].split("#token=")[1]),
        "garant_portal": anonymous.as_(garant["portal_link"].split("#token=")[1]),
    }


def _start(api: Api, aws: Any, doc_id: str, data: bytes, filename: str = "fichier.pdf") -> tuple[str, str]:
    started = _ok(
        api.post(
            f"/portal/documents/{doc_id}/uploads",
            {"filename": filename, "content_type": "application/pdf", "size": len(data)},
        )
    )
    key = started["fields"]["key"]
    aws.client("s3").put_object(
        Bucket=aws.settings.documents_bucket, Key=key, Body=data, ContentType="application/pdf"
    )
    return started["upload_id"], key


def _complete(api: Api, doc_id: str, upload_id: str) -> Any:
    return api.post(f"/portal/documents/{doc_id}/uploads/{upload_id}/complete")


def _object_created(bucket: str, key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e-1",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2027-01-04T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}},
    }


def _ids(r: dict[str, Any], did: str, status: str = "in_progress") -> dict[str, Any]:
    return {"dossier_id": did, "procedure_id": r["pid"], "reference": "LOC-1", "dossier_status": status}


# ---- one event per change ----


def test_opening_a_dossier_reports_it_created_once_even_when_the_request_is_replayed(
    rental: dict[str, Any], aws: Any
) -> None:
    first = _ok(_new_dossier(rental, key="open-loc-1"))
    replayed = _new_dossier(rental, key="open-loc-1")
    assert (replayed.status, replayed.headers.get("Idempotent-Replayed")) == (201, "true")
    [entry] = _activity(rental["staff"], first["id"])
    assert (entry["type"], entry["actor"], entry["data"]) == (
        "dossier.created",
        MANAGER,
        _ids(rental, first["id"]),
    )
    assert entry["at"].endswith("Z")
    assert entry["id"].startswith("evt_")
    [message] = _announced(aws)
    assert (message["id"], message["type"], message["account_id"]) == (
        entry["id"],
        "dossier.created",
        rental["account_id"],
    )


def test_inviting_reports_contributor_invited_once_by_staff_or_by_a_participant(
    opened: dict[str, Any], aws: Any
) -> None:
    staff, did, trail = opened["staff"], opened["did"], opened["trail"]
    assert [e["type"] for e in _activity(staff, did)] == ["dossier.created", "contributor.invited"]
    staff.call("DELETE", f"/dossiers/{did}/contributors/{opened['garant_id']}")
    body = {"role_id": opened["garant"], "name": "Marc Garant", "email": "marc@exemple.fr"}
    invited: dict[str, Any] = {}

    def invite() -> None:
        for _ in range(2):
            answer = staff.post(f"/dossiers/{did}/contributors", body, headers={"Idempotency-Key": "inv-1"})
            invited.update(_ok(answer))

    [entry] = trail.after(invite)
    assert (entry["type"], entry["actor"], entry["data"]) == (
        "contributor.invited",
        MANAGER,
        {**_ids(opened, did), "contributor_id": invited["id"], "role_id": opened["garant"]},
    )
    marc = opened["garant_portal"].as_(invited["portal_link"].split("#token=")[1])
    employee = {"role_id": opened["employeur"], "name": "Société Durand", "email": "rh@durand.fr"}
    [by_garant] = trail.after(lambda: _ok(marc.post("/portal/contributors", employee)))
    assert by_garant["type"] == "contributor.invited"
    assert by_garant["actor"] == {"kind": "participant", "id": invited["id"], "name": "Marc Garant"}
    assert by_garant["data"]["role_id"] == opened["employeur"]


def test_a_file_that_passes_its_check_reports_document_uploaded_once_whoever_settles_it(
    opened: dict[str, Any], aws: Any, client: Any
) -> None:
    trail, locataire, garant = opened["trail"], opened["locataire"], opened["garant_portal"]
    doc = opened["identite"]
    refused, _ = _start(locataire, aws, doc, EXE)
    assert trail.after(lambda: _complete(locataire, doc, refused)) == []
    upload_id, key = _start(locataire, aws, doc, PDF, filename="carte.pdf")

    def complete_twice_then_the_s3_event() -> None:
        assert _complete(locataire, doc, upload_id).status == 200
        assert _complete(locataire, doc, upload_id).status == 200
        bucket = aws.settings.documents_bucket
        assert client.lambda_.invoke("upload_events", _object_created(bucket, key)).payload == "accepted"

    [entry] = trail.after(complete_twice_then_the_s3_event)
    assert (entry["type"], entry["actor"]) == (
        "document.uploaded",
        {"kind": "participant", "id": "main", "name": "Léa Martin"},
    )
    assert entry["data"] == {
        **_ids(opened, opened["did"]),
        "document_id": doc,
        "role_id": "main",
        "document_status": "pending_review",
        "file_id": upload_id,
        "filename": "carte.pdf",
        "content_type": "application/pdf",
        "size": len(PDF),
    }
    salaires = opened["salaires"]
    by_garant, garant_key = _start(garant, aws, salaires, PDF)

    def s3_event_twice() -> None:
        for _ in range(2):
            event = _object_created(aws.settings.documents_bucket, garant_key)
            assert client.lambda_.invoke("upload_events", event).payload == "accepted"

    [from_s3] = trail.after(s3_event_twice)
    assert from_s3["type"] == "document.uploaded"
    assert from_s3["actor"] == {"kind": "participant", "id": opened["garant_id"], "name": "Paul Garant"}
    assert (from_s3["data"]["file_id"], from_s3["data"]["role_id"]) == (by_garant, opened["garant"])


def test_a_rejection_reports_its_comment_and_an_approval_replayed_reports_once(
    opened: dict[str, Any], aws: Any
) -> None:
    staff, did, trail, doc = opened["staff"], opened["did"], opened["trail"], opened["identite"]
    locataire = opened["locataire"]
    trail.after(lambda: _complete(locataire, doc, _start(locataire, aws, doc, PDF)[0]))
    review = f"/dossiers/{did}/documents/{doc}/review"
    [rejected] = trail.after(
        lambda: _ok(staff.post(review, {"decision": "reject", "comment": "Illisible"}), 200)
    )
    assert (rejected["type"], rejected["actor"], rejected["data"]) == (
        "document.rejected",
        MANAGER,
        {
            **_ids(opened, did),
            "document_id": doc,
            "role_id": "main",
            "document_status": "missing",
            "comment": "Illisible",
        },
    )
    trail.after(lambda: _complete(locataire, doc, _start(locataire, aws, doc, PDF)[0]))
    admin = opened["platform"].as_(token("admin", opened["account_id"]))

    def approve_twice() -> None:
        for _ in range(2):
            _ok(admin.post(review, {"decision": "approve"}, headers={"Idempotency-Key": "ok-1"}), 200)

    [approved] = trail.after(approve_twice)
    assert (approved["type"], approved["actor"], approved["data"]) == (
        "document.approved",
        ADMIN,
        {**_ids(opened, did), "document_id": doc, "role_id": "main", "document_status": "approved"},
    )


def test_finishing_a_role_reports_contributor_finished_once_and_the_last_approval_completes(
    opened: dict[str, Any], aws: Any
) -> None:
    staff, did, trail = opened["staff"], opened["did"], opened["trail"]
    garant, salaires = opened["garant_portal"], opened["salaires"]
    trail.after(lambda: _complete(garant, salaires, _start(garant, aws, salaires, PDF)[0]))

    def finish_twice() -> None:
        for _ in range(2):
            _ok(garant.post("/portal/finish"), 200)

    [finished] = trail.after(finish_twice)
    assert (finished["type"], finished["actor"], finished["data"]) == (
        "contributor.finished",
        {"kind": "participant", "id": opened["garant_id"], "name": "Paul Garant"},
        {**_ids(opened, did), "contributor_id": opened["garant_id"], "role_id": opened["garant"]},
    )
    locataire, identite = opened["locataire"], opened["identite"]
    trail.after(lambda: _complete(locataire, identite, _start(locataire, aws, identite, PDF)[0]))
    for doc in (identite, salaires):
        review = f"/dossiers/{did}/documents/{doc}/review"
        added = trail.after(lambda path=review: _ok(staff.post(path, {"decision": "approve"}), 200))
    assert [e["type"] for e in added] == ["document.approved", "dossier.completed"]
    assert added[1]["data"] == _ids(opened, did, status="completed")
    assert added[1]["actor"] == MANAGER
    assert added[0]["data"]["dossier_status"] == "completed"


def test_a_change_that_loses_its_version_race_is_applied_again_and_reports_nothing_twice(
    opened: dict[str, Any], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portal's `complete` and the S3 event settle the same file at once: the event commits first,
    the portal's change meets the newer dossier, is applied to it again and finds nothing new to report."""
    from chalicelib.handlers import upload_events

    trail, locataire, doc = opened["trail"], opened["locataire"], opened["identite"]
    upload_id, key = _start(locataire, aws, doc, PDF)
    trail.after(lambda: None)
    commit = DynamoDossierRepository.commit
    commits: list[str] = []
    raced: list[str] = []

    def commit_after_the_s3_event(self: DynamoDossierRepository, *args: Any, **kwargs: Any) -> int:
        commits.append("commit")
        if len(commits) == 1:
            raced.append(upload_events.handle(_object_created(aws.settings.documents_bucket, key)["detail"]))
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDossierRepository, "commit", commit_after_the_s3_event)
    [entry] = trail.after(lambda: _ok(_complete(locataire, doc, upload_id), 200))
    assert raced == ["accepted"]
    assert len(commits) == 3, "the portal's change should have been applied a second time"
    assert (entry["type"], entry["data"]["file_id"]) == ("document.uploaded", upload_id)


# ---- reading the activity ----


def test_the_activity_reads_oldest_first_page_by_page(opened: dict[str, Any], aws: Any) -> None:
    staff, did = opened["staff"], opened["did"]
    locataire, doc = opened["locataire"], opened["identite"]
    for _ in range(2):
        _complete(locataire, doc, _start(locataire, aws, doc, PDF)[0])
    everything = _activity(staff, did)
    assert [e["type"] for e in everything] == [
        "dossier.created",
        "contributor.invited",
        "document.uploaded",
        "document.uploaded",
    ]
    assert [e["at"] for e in everything] == sorted(e["at"] for e in everything)
    first = _ok(staff.get(f"/dossiers/{did}/activity?limit=3"), 200)
    assert first["items"] == everything[:3]
    assert first["next_cursor"]
    rest = _ok(staff.get(f"/dossiers/{did}/activity?limit=3&cursor={first['next_cursor']}"), 200)
    assert rest == {"items": everything[3:], "next_cursor": None}
    other = _ok(_new_dossier(opened))["id"]
    foreign_cursor = staff.get(f"/dossiers/{other}/activity?cursor={first['next_cursor']}")
    assert (foreign_cursor.status, foreign_cursor.body["error"]["details"][0]["field"]) == (400, "cursor")
    assert staff.get(f"/dossiers/{did}/activity?limit=0").status == 400
    assert staff.get(f"/dossiers/{did}/activity?since=today").status == 400


def test_events_made_within_one_second_read_in_the_order_they_happened(
    rental: dict[str, Any], aws: Any
) -> None:
    aws.clock = lambda: datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
    staff = rental["staff"]
    did = _ok(_new_dossier(rental))["id"]
    for name in ("Paul", "Marc", "Jean"):
        contributor = _ok(
            staff.post(
                f"/dossiers/{did}/contributors",
                {"role_id": rental["garant"], "name": name, "email": "g@exemple.fr"},
            )
        )
        staff.call("DELETE", f"/dossiers/{did}/contributors/{contributor['id']}")
    entries = _activity(staff, did)
    assert [e["type"] for e in entries] == ["dossier.created", *["contributor.invited"] * 3]
    assert len({e["at"] for e in entries}) == 1


def test_admins_and_managers_read_the_activity_other_tenants_and_participants_cannot(
    opened: dict[str, Any], anonymous: Api
) -> None:
    did, platform = opened["did"], opened["platform"]
    path = f"/dossiers/{did}/activity"
    admin = platform.as_(token("admin", opened["account_id"]))
    assert _ok(admin.get(path), 200)["items"] == _ok(opened["staff"].get(path), 200)["items"]
    stranger, _ = _open(platform, name="Cabinet Durand")
    assert stranger.get(path).status == 404
    assert opened["staff"].get("/dossiers/01UNKNOWN/activity").status == 404
    assert opened["locataire"].get(path).status == 401
    assert anonymous.get(path).status == 401
    assert platform.get(path).status == 403


def test_an_erased_dossier_takes_its_activity_with_it(opened: dict[str, Any], aws: Any) -> None:
    did, account_id = opened["did"], opened["account_id"]
    admin = opened["platform"].as_(token("admin", account_id))
    assert admin.call("DELETE", f"/dossiers/{did}").status == 204
    assert admin.get(f"/dossiers/{did}/activity").status == 404
    remaining = aws.client("dynamodb").query(
        TableName=aws.settings.table_name,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"ACCOUNT#{account_id}#DOSSIER#{did}"}},
    )
    assert remaining["Items"] == []


# ---- contracts ----


def test_a_contracts_activity_reads_its_events_oldest_first_for_its_own_account_only(
    platform: Api, aws: Any
) -> None:
    from pynamodb.transactions import TransactWrite

    from chalicelib.adapters.dynamodb.models import transactions

    staff, account_id = _open(platform)
    client_id = _ok(staff.post("/clients", {"name": "Jean Dupont"}))["id"]
    contract_id = _ok(staff.post("/contracts", {"client_id": client_id, "reference": "K1"}))["id"]
    path = f"/contracts/{contract_id}/activity"
    assert _ok(staff.get(path), 200) == {"items": [], "next_cursor": None}
    at = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    subject = Subject(SubjectKind.CONTRACT, contract_id)
    events = [
        Event(account_id, kind, at + timedelta(days=n), subject, {"contract_id": contract_id})
        for n, kind in enumerate((EventType.CONTRACT_SUSPENDED, EventType.CONTRACT_REINSTATED))
    ]
    with TransactWrite(connection=transactions()) as transaction:
        for event in reversed(events):
            transaction.save(event_item(event))
    page = _ok(staff.get(f"{path}?limit=1"), 200)
    assert [e["type"] for e in page["items"]] == ["contract.suspended"]
    rest = _ok(staff.get(f"{path}?cursor={page['next_cursor']}"), 200)
    assert [e["type"] for e in rest["items"]] == ["contract.reinstated"]
    assert rest["items"][0]["actor"] == {"kind": "system", "id": "relais", "name": "Relais"}
    stranger, _ = _open(platform, name="Cabinet Durand")
    assert stranger.get(path).status == 404
    assert staff.get("/contracts/01UNKNOWN/activity").status == 404
    assert staff.get(f"/dossiers/{contract_id}/activity").status == 404
