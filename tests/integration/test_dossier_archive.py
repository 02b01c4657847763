"""Staff archive a dossier (`POST /dossiers/{id}/archive`): it is closed for good, and the account's retention
erases it as it erases a completed one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.local.pumps import drain
from tests.support import Api, open_account, token


def _ok(answer: Any, status: int = 200) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body) if answer.body else {}


def _dossier(staff: Api) -> dict[str, Any]:
    pid = _ok(staff.post("/procedures", {"name": "Adhésion", "main_role_name": "Adhérent"}), 201)["id"]
    _ok(staff.post(f"/procedures/{pid}/documents", {"label": "Pièce d'identité"}), 201)
    recipient = {"name": "Léa Martin", "email": "lea@exemple.fr"}
    return _ok(staff.post("/dossiers", {"procedure_id": pid, "recipient": recipient}), 201)


def test_a_manager_archives_a_dossier_in_progress_once_and_a_retry_with_its_key_replays_the_answer(
    platform: Api,
) -> None:
    manager, _ = open_account(platform)
    dossier = _dossier(manager)
    path = f"/dossiers/{dossier['id']}/archive"
    first = manager.post(path, headers={"Idempotency-Key": "archive-1"})
    assert (first.status, first.body["status"], first.body["id"]) == (200, "archived", dossier["id"])
    replayed = manager.post(path, headers={"Idempotency-Key": "archive-1"})
    assert (replayed.status, replayed.headers.get("Idempotent-Replayed")) == (200, "true")
    assert replayed.body["status"] == "archived"
    again = manager.post(path)
    assert (again.status, again.body["error"]["code"]) == (409, "conflict")
    assert _ok(manager.get(f"/dossiers/{dossier['id']}"))["status"] == "archived"
    listed = _ok(manager.get("/dossiers?status=archived"))["items"]
    assert [d["id"] for d in listed] == [dossier["id"]]
    assert manager.post("/dossiers/nosuchdossier/archive").status == 404


def test_an_archived_dossier_is_erased_by_the_tick_once_the_retention_has_passed(
    platform: Api, aws: Any
) -> None:
    manager, account_id = open_account(platform)
    admin = platform.as_(token("admin", account_id))
    _ok(admin.patch("/account/settings", {"dossier_retention_days": 30}))
    dossier = _dossier(manager)
    _ok(manager.post(f"/dossiers/{dossier['id']}/archive"))
    archived_on = aws.now()
    manager.post("/_local/tick", {"time": (archived_on + timedelta(days=29)).isoformat()})
    drain()
    assert manager.get(f"/dossiers/{dossier['id']}").status == 200
    manager.post("/_local/tick", {"time": (archived_on + timedelta(days=31)).isoformat()})
    drain()
    assert manager.get(f"/dossiers/{dossier['id']}").status == 404
    erased = [e for e in _ok(admin.get("/account/activity"))["items"] if e["type"] == "dossier.erased"]
    assert [(e["data"]["dossier_id"], e["actor"]["kind"]) for e in erased] == [(dossier["id"], "system")]
