"""Document collection through the HTTP API: procedures, dossiers, invitations, the portal, uploads and
reviews (EXAMPLES.md "Contributor visibility": Demande de location)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, token

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"


def _open(platform: Api, plan: str = "platinum") -> tuple[Api, str]:
    body = {"name": "Cabinet Martin", "plan": plan, "sender_email": "contact@martin.fr"}
    account_id = platform.post("/admin/accounts", body).body["id"]
    drain()
    return platform.as_(token("manager", account_id)), account_id


def _ok(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body) if answer.body else {}


def _rental(staff: Api) -> dict[str, Any]:
    """Locataire (main), Garant (edit), Colocataire #2 (view only), four documents."""
    procedure = _ok(staff.post("/procedures", {"name": "Demande de location", "main_role_name": "Locataire"}))
    pid = procedure["id"]
    garant = _ok(staff.post(f"/procedures/{pid}/roles", {"name": "Garant"}))
    coloc = _ok(
        staff.post(f"/procedures/{pid}/roles", {"name": "Colocataire #2", "permissions": {"access": "view"}})
    )
    docs = {
        "identite": _ok(staff.post(f"/procedures/{pid}/documents", {"label": "Pièce d'identité"})),
        "salaires": _ok(
            staff.post(
                f"/procedures/{pid}/documents", {"label": "Bulletins de salaire", "role_id": garant["id"]}
            )
        ),
        "impots": _ok(
            staff.post(
                f"/procedures/{pid}/documents", {"label": "Avis d'imposition", "role_id": garant["id"]}
            )
        ),
        "bail": _ok(
            staff.post(f"/procedures/{pid}/documents", {"label": "Bail signé", "role_id": coloc["id"]})
        ),
    }
    return {"pid": pid, "garant": garant, "coloc": coloc, "docs": docs}


@pytest.fixture
def rental(platform: Api) -> dict[str, Any]:
    staff, account_id = _open(platform)
    r = _rental(staff)
    dossier = _ok(
        staff.post(
            "/dossiers",
            {
                "procedure_id": r["pid"],
                "recipient": {"name": "Léa Martin", "email": "lea@exemple.fr"},
                "reference": "LOC-1",
                "due_date": "2027-03-01",
            },
        )
    )
    garant = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["garant"]["id"], "name": "Paul Garant", "email": "paul@exemple.fr", "notify": True},
        )
    )
    coloc = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["coloc"]["id"], "name": "Zoé Coloc", "email": "zoe@exemple.fr"},
        )
    )
    return {
        **r,
        "staff": staff,
        "account_id": account_id,
        "platform": platform,
        "dossier": dossier,
        "garant_c": garant,
        "coloc_c": coloc,
    }


def _portal(api: Api, link: str) -> Api:
    return api.as_(link.split("#token=")[1])


def test_a_procedure_has_its_main_role_roles_documents_and_a_version(rental: dict[str, Any]) -> None:
    procedure = rental["staff"].get(f"/procedures/{rental['pid']}").body
    assert [r["name"] for r in procedure["roles"]] == ["Locataire", "Garant", "Colocataire #2"]
    assert procedure["roles"][0]["id"] == "main"
    assert procedure["roles"][2]["permissions"] == {
        "access": "view",
        "can_invite": False,
        "sees_shared_files": False,
    }
    assert [d["role_id"] for d in procedure["documents"]][:1] == ["main"]
    assert procedure["version"] == 7


def test_deleting_a_role_sends_its_documents_back_to_main(rental: dict[str, Any]) -> None:
    staff, pid = rental["staff"], rental["pid"]
    assert staff.call("DELETE", f"/procedures/{pid}/roles/{rental['garant']['id']}").status == 204
    procedure = staff.get(f"/procedures/{pid}").body
    assert [d["role_id"] for d in procedure["documents"]] == ["main", "main", "main", rental["coloc"]["id"]]
    assert staff.call("DELETE", f"/procedures/{pid}/roles/main").status == 409


def test_a_document_is_reassigned_to_another_role(rental: dict[str, Any]) -> None:
    staff, pid = rental["staff"], rental["pid"]
    doc = rental["docs"]["identite"]
    moved = staff.patch(f"/procedures/{pid}/documents/{doc['id']}", {"role_id": rental["garant"]["id"]})
    assert (moved.status, moved.body["role_id"]) == (200, rental["garant"]["id"])
    assert staff.patch(f"/procedures/{pid}/documents/{doc['id']}", {"role_id": "nope"}).status == 400


def test_a_dossier_keeps_its_procedure_as_it_was(rental: dict[str, Any]) -> None:
    staff = rental["staff"]
    _ok(staff.post(f"/procedures/{rental['pid']}/documents", {"label": "Quittances"}))
    dossier = staff.get(f"/dossiers/{rental['dossier']['id']}").body
    assert [d["label"] for d in dossier["documents"]] == [
        "Pièce d'identité",
        "Bulletins de salaire",
        "Avis d'imposition",
        "Bail signé",
    ]
    assert all(d["status"] == "missing" for d in dossier["documents"])


def test_roles_need_the_contributors_feature(platform: Api) -> None:
    staff, _ = _open(platform, plan="essential")
    pid = _ok(staff.post("/procedures", {"name": "Prêt"}))["id"]
    answer = staff.post(f"/procedures/{pid}/roles", {"name": "Co-emprunteur"})
    assert answer.status == 402
    assert answer.body["error"]["details"] == {
        "feature": "contributors",
        "unlock": ["platinum", "booster", "trial"],
    }


def test_the_invitation_leaves_when_notify_is_ticked_never_otherwise_without_automation(
    rental: dict[str, Any],
) -> None:
    assert (rental["garant_c"]["notified"], rental["coloc_c"]["notified"]) == (True, False)
    drain()
    invitations = [m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"]
    assert [m["to"] for m in invitations] == [["paul@exemple.fr"]]
    [email] = invitations
    assert "#token=" in email["text"]
    assert email["text"].split("#token=")[1].split()[0] not in rental["garant_c"]["portal_link"]


def test_an_invitation_says_whose_dossier_and_what_for_and_carries_the_privacy_notice(
    rental: dict[str, Any],
) -> None:
    drain()
    [email] = [m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"]
    dossier = rental["dossier"]
    recipient = dossier["recipient"]["name"]
    assert f"de {recipient})" in email["text"]
    notice = email["text"].split("\n--\n", 1)[1]
    assert f"Ce dossier est celui de {recipient}." in notice
    assert "«\u00a0Demande de location\u00a0»" in notice
    for words in ("responsable du traitement", "365\u00a0jours", "rectifier", "effacer", "CNIL"):
        assert words in notice


def test_an_enabled_automation_sends_the_invitation_with_its_own_template(rental: dict[str, Any]) -> None:
    staff, pid = rental["staff"], rental["pid"]
    _ok(
        staff.post(
            f"/procedures/{pid}/automations",
            {
                "trigger": "contributor_invited",
                "to": "contributor",
                "subject": "Bienvenue {{ contributor.name }}",
                "body": "Votre lien : {{ dossier.portal_link }}",
            },
        )
    )
    third = _ok(staff.post(f"/procedures/{pid}/roles", {"name": "Employeur"}))
    dossier = _ok(
        staff.post(
            "/dossiers", {"procedure_id": pid, "recipient": {"name": "Léa", "email": "lea@exemple.fr"}}
        )
    )
    invited = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": third["id"], "name": "Marc", "email": "marc@exemple.fr"},
        )
    )
    assert invited["notified"] is True
    drain()
    [email] = [m for m in sent_messages(REGION) if m["to"] == ["marc@exemple.fr"]]
    assert email["subject"] == "Bienvenue Marc"


def test_a_role_takes_one_contributor_and_names_cannot_inject_headers(rental: dict[str, Any]) -> None:
    staff, did = rental["staff"], rental["dossier"]["id"]
    taken = staff.post(
        f"/dossiers/{did}/contributors",
        {"role_id": rental["garant"]["id"], "name": "Autre", "email": "a@b.fr"},
    )
    assert taken.status == 409
    injected = staff.post(
        f"/dossiers/{did}/contributors",
        {"role_id": rental["garant"]["id"], "name": "X\r\nBcc: spy@evil.fr", "email": "a@b.fr"},
    )
    assert injected.status == 400
    main = staff.post(f"/dossiers/{did}/contributors", {"role_id": "main", "name": "X", "email": "a@b.fr"})
    assert main.status == 400


def test_each_role_sees_only_its_documents_as_in_the_worked_example(
    rental: dict[str, Any], anonymous: Api
) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"]).get("/portal").body
    garant = _portal(anonymous, rental["garant_c"]["portal_link"]).get("/portal").body
    coloc = _portal(anonymous, rental["coloc_c"]["portal_link"]).get("/portal").body
    assert [(d["label"], d["mine"]) for d in locataire["documents"]] == [
        ("Pièce d'identité", True),
        ("Bulletins de salaire", False),
        ("Avis d'imposition", False),
        ("Bail signé", False),
    ]
    assert [d["label"] for d in garant["documents"]] == ["Bulletins de salaire", "Avis d'imposition"]
    assert [d["label"] for d in coloc["documents"]] == ["Bail signé"]
    assert garant["me"]["name"] == "Paul Garant"
    assert garant["dossier"] == {
        "id": rental["dossier"]["id"],
        "reference": "LOC-1",
        "procedure_name": "Demande de location",
        "due_date": "2027-03-01",
        "status": "in_progress",
    }


def _upload(
    api: Api,
    aws: Any,
    doc_id: str,
    data: bytes,
    content_type: str = "application/pdf",
    filename: str = "fichier.pdf",
) -> tuple[Any, str]:
    started = api.post(
        f"/portal/documents/{doc_id}/uploads",
        {"filename": filename, "content_type": content_type, "size": len(data)},
    )
    assert started.status == 201, started.body
    fields = started.body["fields"]
    assert fields["Content-Type"] == content_type
    aws.client("s3").put_object(
        Bucket=aws.settings.documents_bucket, Key=fields["key"], Body=data, ContentType=content_type
    )
    return api.post(f"/portal/documents/{doc_id}/uploads/{started.body['upload_id']}/complete"), started.body[
        "upload_id"
    ]


def test_an_upload_is_checked_by_its_bytes_and_goes_to_review_then_approval_completes(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]
    renamed, _ = _upload(locataire, aws, doc, EXE)
    assert renamed.status == 400
    assert renamed.body["error"]["details"] == [
        {"field": "file", "issue": "the file's content is not application/pdf"}
    ]
    done, upload_id = _upload(locataire, aws, doc, PDF)
    assert (done.status, done.body["status"]) == (200, "pending_review")
    assert [f["status"] for f in done.body["files"]] == ["rejected", "accepted"]
    download = locataire.get(f"/portal/documents/{doc}/files/{upload_id}")
    assert download.status == 302
    assert rental["account_id"] in download.headers["Location"]
    staff, did = rental["staff"], rental["dossier"]["id"]
    rejected = staff.post(
        f"/dossiers/{did}/documents/{doc}/review", {"decision": "reject", "comment": "Illisible"}
    )
    assert (rejected.status, rejected.body["status"], rejected.body["review"]["comment"]) == (
        200,
        "missing",
        "Illisible",
    )
    assert staff.post(f"/dossiers/{did}/documents/{doc}/review", {"decision": "reject"}).status == 400
    _upload(locataire, aws, doc, PDF)
    approved = staff.post(f"/dossiers/{did}/documents/{doc}/review", {"decision": "approve"})
    assert approved.body["status"] == "approved"
    again = locataire.post(
        f"/portal/documents/{doc}/uploads",
        {"filename": "x.pdf", "content_type": "application/pdf", "size": 10},
    )
    assert again.status == 409


def test_the_permission_matrix_of_the_portal(rental: dict[str, Any], anonymous: Api) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    garant = _portal(anonymous, rental["garant_c"]["portal_link"])
    coloc = _portal(anonymous, rental["coloc_c"]["portal_link"])
    docs = {k: v["id"] for k, v in rental["docs"].items()}
    body = {"filename": "f.pdf", "content_type": "application/pdf", "size": 100}
    expected = {
        (locataire, "identite"): 201,
        (locataire, "salaires"): 403,
        (locataire, "bail"): 403,
        (garant, "salaires"): 201,
        (garant, "impots"): 201,
        (garant, "identite"): 404,
        (garant, "bail"): 404,
        (coloc, "bail"): 403,
        (coloc, "identite"): 404,
        (coloc, "salaires"): 404,
    }
    for (api, doc), status in expected.items():
        assert api.post(f"/portal/documents/{docs[doc]}/uploads", body).status == status, (doc, status)
    assert (
        garant.post(
            "/portal/contributors", {"role_id": rental["coloc"]["id"], "name": "X", "email": "x@y.fr"}
        ).status
        == 403
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filename": "f.exe", "content_type": "application/x-msdownload", "size": 100}, "content_type"),
        ({"filename": "f.pdf", "content_type": "application/pdf", "size": 11 * 1024 * 1024}, "size"),
        ({"filename": "f.pdf", "content_type": "application/pdf", "size": 0}, "size"),
        ({"filename": "f.pdf", "content_type": "application/pdf"}, "size"),
    ],
)
def test_upload_limits_are_the_documents(
    rental: dict[str, Any], anonymous: Api, body: dict[str, Any], field: str
) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    answer = locataire.post(f"/portal/documents/{rental['docs']['identite']['id']}/uploads", body)
    assert answer.status == 400
    assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_a_document_takes_twenty_files_for_a_review_and_abandoned_uploads_stop_counting(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    from chalicelib.domain.dossiers import MAX_FILES_PER_DOCUMENT, MAX_PENDING_PER_PARTICIPANT

    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]
    body = {"filename": "cni.pdf", "content_type": "application/pdf", "size": 1000}
    for _ in range(MAX_FILES_PER_DOCUMENT - MAX_PENDING_PER_PARTICIPANT):
        assert _upload(locataire, aws, doc, PDF)[0].status == 200
    for _ in range(MAX_PENDING_PER_PARTICIPANT):
        assert locataire.post(f"/portal/documents/{doc}/uploads", body).status == 201
    full = locataire.post(f"/portal/documents/{doc}/uploads", body)
    assert (full.status, full.body["error"]["code"]) == (409, "conflict")
    assert "20 files" in full.body["error"]["message"]
    # Another document of the dossier is not held back.
    other = rental["docs"]["salaires"]["id"]
    garant = _portal(anonymous, rental["garant_c"]["portal_link"])
    assert garant.post(f"/portal/documents/{other}/uploads", body).status == 201
    # An hour later the uploads never sent are dropped; the completed files stay.
    later = aws.now() + timedelta(hours=2)
    aws.clock = lambda: later
    assert locataire.post(f"/portal/documents/{doc}/uploads", body).status == 201
    files = next(d for d in locataire.get("/portal").body["documents"] if d["id"] == doc)["files"]
    assert len(files) == MAX_FILES_PER_DOCUMENT - MAX_PENDING_PER_PARTICIPANT


def test_a_participant_has_at_most_three_uploads_under_way_on_one_document(
    rental: dict[str, Any], anonymous: Api
) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]
    body = {"filename": "cni.pdf", "content_type": "application/pdf", "size": 1000}
    answers = [locataire.post(f"/portal/documents/{doc}/uploads", body) for _ in range(4)]
    assert [a.status for a in answers] == [201, 201, 201, 409]
    assert "being sent" in answers[3].body["error"]["message"]


def test_a_rejected_document_takes_new_files_though_it_already_held_twenty(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    from chalicelib.domain.dossiers import MAX_FILES_PER_DOCUMENT

    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    staff, did = rental["staff"], rental["dossier"]["id"]
    doc = rental["docs"]["identite"]["id"]
    for _ in range(MAX_FILES_PER_DOCUMENT):
        assert _upload(locataire, aws, doc, PDF)[0].status == 200
    body = {"filename": "cni.pdf", "content_type": "application/pdf", "size": 1000}
    assert locataire.post(f"/portal/documents/{doc}/uploads", body).status == 409
    review = {"decision": "reject", "comment": "Recto seulement"}
    assert staff.post(f"/dossiers/{did}/documents/{doc}/review", review).status == 200
    again, _ = _upload(locataire, aws, doc, PDF)
    assert (again.status, again.body["status"]) == (200, "pending_review")
    approved = staff.post(f"/dossiers/{did}/documents/{doc}/review", {"decision": "approve"})
    assert (approved.status, approved.body["status"]) == (200, "approved")


def test_a_procedure_that_would_outgrow_its_storage_is_refused_with_409_not_a_500(
    rental: dict[str, Any],
) -> None:
    staff, pid = rental["staff"], rental["pid"]
    automation = {"trigger": "role_finished", "to": "account", "subject": "Fini", "body": "é" * 20_000}
    answers = [staff.post(f"/procedures/{pid}/automations", automation).status for _ in range(12)]
    assert 409 in answers
    assert set(answers) == {201, 409}
    assert answers.index(409) == answers.count(201)
    procedure = staff.get(f"/procedures/{pid}")
    assert procedure.status == 200
    assert len(procedure.body["automations"]) == answers.count(201)


def test_finishing_needs_every_required_document_sent(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    garant = _portal(anonymous, rental["garant_c"]["portal_link"])
    assert garant.post("/portal/finish").status == 409
    for key in ("salaires", "impots"):
        _upload(garant, aws, rental["docs"][key]["id"], PDF)
    finished = garant.post("/portal/finish")
    assert (finished.status, finished.body["finished"]) == (200, True)


def test_removing_a_contributor_kills_the_link_at_once_and_a_resend_rotates_it(
    rental: dict[str, Any], anonymous: Api
) -> None:
    staff, did = rental["staff"], rental["dossier"]["id"]
    garant = _portal(anonymous, rental["garant_c"]["portal_link"])
    assert garant.get("/portal").status == 200
    assert staff.post(f"/dossiers/{did}/contributors/{rental['garant_c']['id']}/invitation").status == 202
    assert garant.get("/portal").status == 401
    drain()
    resent = [m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"][-1]
    fresh = anonymous.as_(resent["text"].split("#token=")[1].split()[0])
    assert fresh.get("/portal").status == 200
    assert staff.call("DELETE", f"/dossiers/{did}/contributors/{rental['garant_c']['id']}").status == 204
    assert fresh.get("/portal").status == 401
    coloc = _portal(anonymous, rental["coloc_c"]["portal_link"])
    assert coloc.get("/portal").status == 200


def test_forged_and_expired_links_are_unauthorized(rental: dict[str, Any], anonymous: Api, aws: Any) -> None:
    assert anonymous.as_("forged-token").get("/portal").status == 401
    assert anonymous.get("/portal").status == 401
    aws.clock = lambda: __import__("chalicelib.wiring", fromlist=["utc_now"]).utc_now() + timedelta(days=31)
    assert _portal(anonymous, rental["dossier"]["portal_link"]).get("/portal").status == 401


def test_a_trial_that_ends_keeps_links_working_and_refuses_new_roles_and_invitations(
    platform: Api, anonymous: Api, aws: Any
) -> None:
    staff, account_id = _open(platform, plan="essential")
    admin = platform.as_(token("admin", account_id))
    _ok(admin.post("/account/trials", {"feature": "contributors"}))
    r = _rental(staff)
    dossier = _ok(
        staff.post(
            "/dossiers", {"procedure_id": r["pid"], "recipient": {"name": "Léa", "email": "lea@exemple.fr"}}
        )
    )
    garant = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["garant"]["id"], "name": "Paul", "email": "paul@exemple.fr"},
        )
    )
    from chalicelib.wiring import utc_now

    aws.clock = lambda: utc_now() + timedelta(days=8)
    assert _portal(anonymous, garant["portal_link"]).get("/portal").status == 200
    assert staff.post(f"/procedures/{r['pid']}/roles", {"name": "Autre"}).status == 402
    assert (
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["coloc"]["id"], "name": "Zoé", "email": "z@e.fr"},
        ).status
        == 402
    )


def test_another_accounts_procedures_and_dossiers_are_not_found(rental: dict[str, Any]) -> None:
    other, _ = _open(rental["platform"])
    did, pid = rental["dossier"]["id"], rental["pid"]
    for path in (f"/procedures/{pid}", f"/dossiers/{did}"):
        assert other.get(path).status == 404
    assert other.post(f"/procedures/{pid}/documents", {"label": "X"}).status == 404
    assert (
        other.post(
            f"/dossiers/{did}/contributors",
            {"role_id": rental["garant"]["id"], "name": "X", "email": "x@y.fr"},
        ).status
        == 404
    )
    assert (
        other.post(
            f"/dossiers/{did}/documents/{rental['docs']['identite']['id']}/review", {"decision": "approve"}
        ).status
        == 404
    )
    assert (
        other.post("/dossiers", {"procedure_id": pid, "recipient": {"name": "X", "email": "x@y.fr"}}).status
        == 404
    )
    assert other.get("/dossiers").body["items"] == []


def test_a_rejection_fires_the_document_rejected_automation_with_the_comment(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    staff, pid = rental["staff"], rental["pid"]
    _ok(
        staff.post(
            f"/procedures/{pid}/automations",
            {
                "trigger": "document_rejected",
                "to": "contributor",
                "subject": "{{ document.label }} refusé",
                "body": "Motif : {{ document.comment }} {{ dossier.portal_link }}",
            },
        )
    )
    dossier = _ok(
        staff.post(
            "/dossiers", {"procedure_id": pid, "recipient": {"name": "Léa", "email": "lea@exemple.fr"}}
        )
    )
    doc = rental["docs"]["identite"]["id"]
    _upload(_portal(anonymous, dossier["portal_link"]), aws, doc, PDF)
    staff.post(
        f"/dossiers/{dossier['id']}/documents/{doc}/review",
        {"decision": "reject", "comment": "Recto seulement"},
    )
    drain()
    [email] = [m for m in sent_messages(REGION) if m["kind"] == "document_rejected"]
    assert (email["to"], email["subject"]) == (["lea@exemple.fr"], "Pièce d'identité refusé")
    assert "Motif : Recto seulement" in email["text"]
    assert "#token=" in email["text"]


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


def test_the_s3_event_completes_an_upload_on_its_own_once(
    rental: dict[str, Any], anonymous: Api, aws: Any, client: Any
) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]
    started = locataire.post(
        f"/portal/documents/{doc}/uploads",
        {"filename": "id.pdf", "content_type": "application/pdf", "size": len(PDF)},
    ).body
    bucket, key = aws.settings.documents_bucket, started["fields"]["key"]
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=PDF)
    for _ in range(2):
        assert client.lambda_.invoke("upload_events", _object_created(bucket, key)).payload == "accepted"
    documents = locataire.get("/portal").body["documents"]
    assert [d["status"] for d in documents if d["id"] == doc] == ["pending_review"]
    assert client.lambda_.invoke("upload_events", _object_created("another-bucket", key)).payload == "ignored"
    assert client.lambda_.invoke("upload_events", _object_created(bucket, "elsewhere/x")).payload == "ignored"
    complete = locataire.post(f"/portal/documents/{doc}/uploads/{started['upload_id']}/complete")
    assert (complete.status, complete.body["status"]) == (200, "pending_review")


def test_the_s3_event_rejects_a_renamed_executable(
    rental: dict[str, Any], anonymous: Api, aws: Any, client: Any
) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]
    started = locataire.post(
        f"/portal/documents/{doc}/uploads",
        {"filename": "id.pdf", "content_type": "application/pdf", "size": len(EXE)},
    ).body
    aws.client("s3").put_object(Bucket=aws.settings.documents_bucket, Key=started["fields"]["key"], Body=EXE)
    assert (
        client.lambda_.invoke(
            "upload_events", _object_created(aws.settings.documents_bucket, started["fields"]["key"])
        ).payload
        == "rejected"
    )
    [document] = [d for d in locataire.get("/portal").body["documents"] if d["id"] == doc]
    assert document["status"] == "missing"
    assert [(f["status"], f["reason"]) for f in document["files"]] == [
        ("rejected", "the file's content is not application/pdf")
    ]


def test_deadline_approaching_writes_once_to_each_role_still_missing_a_document(
    platform: Api, anonymous: Api, aws: Any, client: Any
) -> None:
    staff, _ = _open(platform)
    r = _rental(staff)
    _ok(
        staff.post(
            f"/procedures/{r['pid']}/automations",
            {
                "trigger": "deadline_approaching",
                "to": "all_roles",
                "days_before": 3,
                "subject": "Plus que 3 jours pour {{ dossier.reference }}",
                "body": "{{ contributor.name }}, il manque des pièces : {{ dossier.portal_link }}",
            },
        )
    )
    assert (
        staff.post(
            f"/procedures/{r['pid']}/automations",
            {"trigger": "deadline_approaching", "to": "main", "subject": "s", "body": "b"},
        ).status
        == 400
    )
    dossier = _ok(
        staff.post(
            "/dossiers",
            {
                "procedure_id": r["pid"],
                "recipient": {"name": "Léa", "email": "lea@exemple.fr"},
                "reference": "LOC-9",
                "due_date": "2027-03-10",
            },
        )
    )
    garant = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["garant"]["id"], "name": "Paul", "email": "paul@exemple.fr"},
        )
    )
    _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["coloc"]["id"], "name": "Zoé", "email": "zoe@exemple.fr"},
        )
    )
    for key in ("salaires", "impots"):
        _upload(_portal(anonymous, garant["portal_link"]), aws, r["docs"][key]["id"], PDF)
    assert staff.post("/_local/tick", {"time": "2027-03-06T23:00:00Z"}).status == 200
    assert [m for m in sent_messages(REGION) if m["kind"] == "deadline_approaching"] == []
    for _ in range(2):
        assert (
            client.lambda_.invoke(
                "dunning_tick",
                {
                    "version": "0",
                    "id": "t",
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": "1",
                    "time": "2027-03-07T08:00:00Z",
                    "region": REGION,
                    "resources": [],
                    "detail": {},
                },
            ).payload["queued"]
            >= 0
        )
        drain()
    reminders = [m for m in sent_messages(REGION) if m["kind"] == "deadline_approaching"]
    assert sorted(m["to"][0] for m in reminders) == ["lea@exemple.fr", "zoe@exemple.fr"]
    assert all("#token=" in m["text"] and m["subject"] == "Plus que 3 jours pour LOC-9" for m in reminders)


def test_the_portal_matrix_for_viewing_downloading_finishing_and_inviting(
    platform: Api, anonymous: Api, aws: Any
) -> None:
    """Garant may invite; Colocataire sees the shared files' statuses but not their files and only views."""
    staff, _ = _open(platform)
    r = _rental(staff)
    pid = r["pid"]
    staff.patch(
        f"/procedures/{pid}/roles/{r['garant']['id']}",
        {"permissions": {"access": "edit", "can_invite": True}},
    )
    staff.patch(
        f"/procedures/{pid}/roles/{r['coloc']['id']}",
        {"permissions": {"access": "view", "sees_shared_files": True}},
    )
    dossier = _ok(
        staff.post(
            "/dossiers", {"procedure_id": pid, "recipient": {"name": "Léa", "email": "lea@exemple.fr"}}
        )
    )
    garant_link = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["garant"]["id"], "name": "Paul", "email": "paul@exemple.fr"},
        )
    )["portal_link"]
    garant = _portal(anonymous, garant_link)
    locataire = _portal(anonymous, dossier["portal_link"])
    docs = {k: v["id"] for k, v in r["docs"].items()}
    _, salary_file = _upload(garant, aws, docs["salaires"], PDF)
    _, id_file = _upload(locataire, aws, docs["identite"], PDF)

    view = garant.get("/portal").body
    assert view["roles"] == [{"id": r["coloc"]["id"], "name": "Colocataire #2"}]
    invited = garant.post(
        "/portal/contributors", {"role_id": r["coloc"]["id"], "name": "Zoé", "email": "zoe@exemple.fr"}
    )
    assert invited.status == 201
    assert (
        garant.post("/portal/contributors", {"role_id": "main", "name": "X", "email": "x@y.fr"}).status == 400
    )
    assert (
        garant.post(
            "/portal/contributors", {"role_id": r["garant"]["id"], "name": "X", "email": "x@y.fr"}
        ).status
        == 400
    )
    assert (
        garant.post(
            "/portal/contributors", {"role_id": r["coloc"]["id"], "name": "X", "email": "x@y.fr"}
        ).status
        == 409
    )
    drain()
    [invitation] = [m for m in sent_messages(REGION) if m["to"] == ["zoe@exemple.fr"]]
    coloc = anonymous.as_(invitation["text"].split("#token=")[1].split()[0])

    shared = coloc.get("/portal").body
    assert [(d["label"], d["mine"], d["files"]) for d in shared["documents"]][:2] == [
        ("Pièce d'identité", False, []),
        ("Bulletins de salaire", False, []),
    ]
    assert [d["status"] for d in shared["documents"]][:2] == ["pending_review", "pending_review"]
    assert coloc.get(f"/portal/documents/{docs['salaires']}/files/{salary_file}").status == 404
    assert (
        coloc.post(
            f"/portal/documents/{docs['bail']}/uploads",
            {"filename": "b.pdf", "content_type": "application/pdf", "size": 10},
        ).status
        == 403
    )
    assert (
        coloc.post(
            "/portal/contributors", {"role_id": r["garant"]["id"], "name": "X", "email": "x@y.fr"}
        ).status
        == 403
    )

    main_view = locataire.get("/portal").body
    salaries = [d for d in main_view["documents"] if d["id"] == docs["salaires"]]
    assert [(d["status"], d["files"]) for d in salaries] == [("pending_review", [])]
    assert locataire.get(f"/portal/documents/{docs['salaires']}/files/{salary_file}").status == 404
    assert locataire.get(f"/portal/documents/{docs['identite']}/files/{id_file}").status == 302
    assert garant.get(f"/portal/documents/{docs['identite']}/files/{id_file}").status == 404
    assert locataire.post("/portal/finish").status == 200
    assert garant.post("/portal/finish").status == 409
    assert coloc.post("/portal/finish").status == 409


def test_automations_can_write_to_the_account_and_to_every_role(platform: Api) -> None:
    staff, _ = _open(platform)
    r = _rental(staff)
    for to in ("account", "all_roles"):
        _ok(
            staff.post(
                f"/procedures/{r['pid']}/automations",
                {
                    "trigger": "contributor_invited",
                    "to": to,
                    "subject": f"[{to}] {{{{ contributor.name }}}} invité",
                    "body": "{{ role.name }} {{ dossier.portal_link }}",
                },
            )
        )
    dossier = _ok(
        staff.post(
            "/dossiers", {"procedure_id": r["pid"], "recipient": {"name": "Léa", "email": "lea@exemple.fr"}}
        )
    )
    invited = _ok(
        staff.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": r["garant"]["id"], "name": "Paul", "email": "paul@exemple.fr"},
        )
    )
    assert invited["notified"] is True
    drain()
    sent = sorted(
        (m["to"][0], m["subject"]) for m in sent_messages(REGION) if m["kind"] == "contributor_invited"
    )
    reference = dossier["reference"]
    assert sent == [
        ("contact@martin.fr", "[account] Paul invité"),
        ("lea@exemple.fr", "[all_roles] Paul invité"),
        ("paul@exemple.fr", "Cabinet Martin vous invite à compléter le dossier " + reference),
        ("paul@exemple.fr", "[all_roles] Paul invité"),
    ]
    account_email = next(m for m in sent_messages(REGION) if m["subject"] == "[account] Paul invité")
    assert "#token=" not in account_email["text"]


def test_every_staff_route_of_another_account_answers_not_found(rental: dict[str, Any]) -> None:
    other, _ = _open(rental["platform"])
    pid, did = rental["pid"], rental["dossier"]["id"]
    rid, cid, doc = rental["garant"]["id"], rental["garant_c"]["id"], rental["docs"]["identite"]["id"]
    calls = [
        ("PATCH", f"/procedures/{pid}", {"name": "X"}),
        ("POST", f"/procedures/{pid}/roles", {"name": "X"}),
        ("PATCH", f"/procedures/{pid}/roles/{rid}", {"name": "X"}),
        ("DELETE", f"/procedures/{pid}/roles/{rid}", None),
        ("PATCH", f"/procedures/{pid}/documents/{doc}", {"label": "X"}),
        (
            "POST",
            f"/procedures/{pid}/automations",
            {"trigger": "role_finished", "to": "account", "subject": "s", "body": "b"},
        ),
        ("DELETE", f"/dossiers/{did}/contributors/{cid}", None),
        ("POST", f"/dossiers/{did}/contributors/{cid}/invitation", None),
    ]
    for method, path, body in calls:
        assert other.call(method, path, body).status == 404, (method, path)
    assert rental["staff"].get(f"/dossiers/{did}").body["contributors"][0]["id"] == cid


def test_a_disabled_automation_sends_nothing_and_an_unknown_variable_is_refused_when_saved(
    rental: dict[str, Any],
) -> None:
    staff, pid = rental["staff"], rental["pid"]
    refused = staff.post(
        f"/procedures/{pid}/automations",
        {
            "trigger": "contributor_invited",
            "to": "contributor",
            "subject": "{{ installment.amount }}",
            "body": "b",
        },
    )
    assert refused.status == 400
    assert refused.body["error"]["details"] == [
        {"field": "subject", "issue": "uses `installment.amount`, which this kind does not offer"}
    ]
    escape = staff.post(
        f"/procedures/{pid}/automations",
        {
            "trigger": "role_finished",
            "to": "main",
            "subject": "s",
            "body": "{{ role.name.__class__.__mro__ }}",
        },
    )
    assert escape.status == 400
    _ok(
        staff.post(
            f"/procedures/{pid}/automations",
            {
                "trigger": "contributor_invited",
                "to": "contributor",
                "subject": "s",
                "body": "b",
                "enabled": False,
            },
        )
    )
    third = _ok(staff.post(f"/procedures/{pid}/roles", {"name": "Employeur"}))
    marc = {"role_id": third["id"], "name": "Marc", "email": "marc@exemple.fr"}
    too_old = staff.post(f"/dossiers/{rental['dossier']['id']}/contributors", marc)
    assert too_old.status == 400, "a running dossier keeps the roles its procedure had"
    dossier = _ok(
        staff.post("/dossiers", {"procedure_id": pid, "recipient": {"name": "Léa", "email": "l@e.fr"}})
    )
    invited = _ok(staff.post(f"/dossiers/{dossier['id']}/contributors", marc))
    assert invited["notified"] is False
    drain()
    assert [m for m in sent_messages(REGION) if m["to"] == ["marc@exemple.fr"]] == []


def test_a_replacement_contributor_sees_none_of_the_files_his_predecessor_sent(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    staff, did = rental["staff"], rental["dossier"]["id"]
    paul = _portal(anonymous, rental["garant_c"]["portal_link"])
    salaires = rental["docs"]["salaires"]["id"]
    sent, paul_file = _upload(paul, aws, salaires, PDF, filename="bulletin-paul.pdf")
    assert sent.status == 200
    assert staff.call("DELETE", f"/dossiers/{did}/contributors/{rental['garant_c']['id']}").status == 204
    invited = staff.post(
        f"/dossiers/{did}/contributors",
        {"role_id": rental["garant"]["id"], "name": "Marie Garant", "email": "marie@exemple.fr"},
    )
    marie = _portal(anonymous, _ok(invited)["portal_link"])
    seen = next(d for d in marie.get("/portal").body["documents"] if d["id"] == salaires)
    assert seen["files"] == []
    assert marie.get(f"/portal/documents/{salaires}/files/{paul_file}").status == 404
    staff_view = next(d for d in staff.get(f"/dossiers/{did}").body["documents"] if d["id"] == salaires)
    assert [f["filename"] for f in staff_view["files"]] == ["bulletin-paul.pdf"]
    # Marie's own file is hers to see and download.
    _, marie_file = _upload(marie, aws, salaires, PDF, filename="bulletin-marie.pdf")
    seen = next(d for d in marie.get("/portal").body["documents"] if d["id"] == salaires)
    assert [f["filename"] for f in seen["files"]] == ["bulletin-marie.pdf"]
    assert marie.get(f"/portal/documents/{salaires}/files/{marie_file}").status == 302


def test_bytes_posted_again_under_an_upload_key_after_its_check_are_never_served(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    from urllib.parse import parse_qs, urlsplit

    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]
    started = locataire.post(
        f"/portal/documents/{doc}/uploads",
        {"filename": "cni.pdf", "content_type": "application/pdf", "size": len(PDF)},
    ).body
    s3, bucket, key = aws.client("s3"), aws.settings.documents_bucket, started["fields"]["key"]
    s3.put_object(Bucket=bucket, Key=key, Body=PDF, ContentType="application/pdf")
    assert locataire.post(f"/portal/documents/{doc}/uploads/{started['upload_id']}/complete").status == 200
    # The same presigned form, still valid, writes other bytes under the key.
    s3.put_object(Bucket=bucket, Key=key, Body=EXE, ContentType="application/pdf")
    location = locataire.get(f"/portal/documents/{doc}/files/{started['upload_id']}").headers["Location"]
    version = parse_qs(urlsplit(location).query)["versionId"][0]
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read() == PDF
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == EXE


def test_a_file_name_is_bounded_in_bytes_and_refuses_line_breaks(
    rental: dict[str, Any], anonymous: Api
) -> None:
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]

    def start(filename: str) -> Any:
        body = {"filename": filename, "content_type": "application/pdf", "size": 100}
        return locataire.post(f"/portal/documents/{doc}/uploads", body)

    too_long = start("😀" * 64 + ".pdf")
    assert too_long.status == 400
    assert too_long.body["error"]["details"][0]["field"] == "filename"
    assert start("a\r\nX-Injected: 1.pdf").status == 400
    assert start("😀" * 62 + ".pdf").status == 201
    assert start('Relevé "définitif" d’impôts.pdf').status == 201


def test_one_participant_flooding_uploads_leaves_room_for_the_others_and_the_staff(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    staff, pid, garant_role = rental["staff"], rental["pid"], rental["garant"]["id"]
    extra = [
        _ok(
            staff.post(f"/procedures/{pid}/documents", {"label": f"Justificatif {n}", "role_id": garant_role})
        )
        for n in range(4)
    ]
    dossier = _ok(
        staff.post(
            "/dossiers", {"procedure_id": pid, "recipient": {"name": "Léa", "email": "lea@exemple.fr"}}
        )
    )
    did = dossier["id"]
    invited = staff.post(
        f"/dossiers/{did}/contributors", {"role_id": garant_role, "name": "Paul", "email": "paul@exemple.fr"}
    )
    garant = _portal(anonymous, _ok(invited)["portal_link"])
    docs = [rental["docs"]["salaires"]["id"], rental["docs"]["impots"]["id"], *(d["id"] for d in extra)]
    name = "🧾" * 255
    answers = []
    for attempt in range(110):
        body = {"filename": name, "content_type": "application/pdf", "size": len(PDF)}
        started = garant.post(f"/portal/documents/{docs[attempt % len(docs)]}/uploads", body)
        if started.status == 400:
            name = "🧾" * 62 + ".pdf"
            continue
        answers.append(started.status)
    assert set(answers) == {201, 409}
    locataire = _portal(anonymous, dossier["portal_link"])
    for _ in range(5):
        assert _upload(locataire, aws, rental["docs"]["identite"]["id"], PDF)[0].status == 200
    coloc = staff.post(
        f"/dossiers/{did}/contributors",
        {"role_id": rental["coloc"]["id"], "name": "Zoé", "email": "zoe@exemple.fr"},
    )
    assert coloc.status == 201
    review = {"decision": "reject", "comment": "Illisible"}
    assert staff.post(f"/dossiers/{did}/documents/{docs[0]}/review", review).status == 200
    assert staff.post(f"/dossiers/{did}/contributors/{coloc.body['id']}/invitation").status == 202


def test_the_main_recipient_sees_another_roles_refusal_without_its_comment(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    staff, did = rental["staff"], rental["dossier"]["id"]
    garant = _portal(anonymous, rental["garant_c"]["portal_link"])
    salaires = rental["docs"]["salaires"]["id"]
    _upload(garant, aws, salaires, PDF)
    comment = "Le bulletin de mars manque, et le salaire net est de 1 850 €"
    assert (
        staff.post(f"/dossiers/{did}/documents/{salaires}/review", {"decision": "reject", "comment": comment})
    ).status == 200
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    seen_by_main = next(d for d in locataire.get("/portal").body["documents"] if d["id"] == salaires)
    assert (seen_by_main["status"], seen_by_main["review"], seen_by_main["files"]) == ("missing", None, [])
    seen_by_garant = next(d for d in garant.get("/portal").body["documents"] if d["id"] == salaires)
    assert seen_by_garant["review"]["comment"] == comment


def test_a_document_whose_only_file_was_refused_by_the_check_cannot_be_approved(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    staff, did = rental["staff"], rental["dossier"]["id"]
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    doc = rental["docs"]["identite"]["id"]
    approve = {"decision": "approve"}
    assert staff.post(f"/dossiers/{did}/documents/{doc}/review", approve).status == 409
    assert _upload(locataire, aws, doc, EXE)[0].status == 400
    refused = staff.post(f"/dossiers/{did}/documents/{doc}/review", approve)
    assert (refused.status, refused.body["error"]["code"]) == (409, "conflict")
    assert _upload(locataire, aws, doc, PDF)[0].status == 200
    assert staff.post(f"/dossiers/{did}/documents/{doc}/review", approve).status == 200


def test_an_admin_erases_a_dossier_with_every_version_of_its_files_its_links_and_its_queued_emails(
    rental: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    staff, did, account_id = rental["staff"], rental["dossier"]["id"], rental["account_id"]
    locataire = _portal(anonymous, rental["dossier"]["portal_link"])
    garant = _portal(anonymous, rental["garant_c"]["portal_link"])
    done, _ = _upload(locataire, aws, rental["docs"]["identite"]["id"], PDF)
    assert done.status == 200
    s3, bucket = aws.client("s3"), aws.settings.documents_bucket
    prefix = f"accounts/{account_id}/dossiers/{did}/"
    key = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"][0]["Key"]
    s3.put_object(Bucket=bucket, Key=key, Body=PDF + b"%second version")
    s3.delete_object(Bucket=bucket, Key=key)  # a delete marker: the versions are still there
    admin = rental["platform"].as_(token("admin", account_id))
    assert staff.call("DELETE", f"/dossiers/{did}").status == 403
    assert admin.call("DELETE", f"/dossiers/{did}").status == 204
    assert staff.get(f"/dossiers/{did}").status == 404
    assert (locataire.get("/portal").status, garant.get("/portal").status) == (401, 401)
    listed = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    assert (listed.get("Versions", []), listed.get("DeleteMarkers", [])) == ([], [])
    drain()  # the garant's invitation was queued before the erasure: skipped, emptied, never sent
    assert [m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"] == []
    assert admin.call("DELETE", f"/dossiers/{did}").status == 404
    remaining = aws.client("dynamodb").query(
        TableName=aws.settings.table_name,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"ACCOUNT#{account_id}#DOSSIER#{did}"}},
    )
    assert remaining["Items"] == []


def test_a_completed_dossier_is_erased_by_the_tick_once_the_account_retention_has_passed(
    platform: Api, anonymous: Api, aws: Any
) -> None:
    staff, account_id = _open(platform)
    pid = _ok(staff.post("/procedures", {"name": "Adhésion", "main_role_name": "Adhérent"}))["id"]
    doc = _ok(staff.post(f"/procedures/{pid}/documents", {"label": "Pièce d'identité"}))["id"]
    dossier = _ok(
        staff.post(
            "/dossiers",
            {"procedure_id": pid, "recipient": {"name": "Léa Martin", "email": "lea@exemple.fr"}},
        )
    )
    _upload(_portal(anonymous, dossier["portal_link"]), aws, doc, PDF)
    approved = staff.post(f"/dossiers/{dossier['id']}/documents/{doc}/review", {"decision": "approve"})
    assert approved.status == 200, approved.body
    assert staff.get(f"/dossiers/{dossier['id']}").body["status"] == "completed"
    drain()
    completed_on = aws.now()
    prefix = f"accounts/{account_id}/dossiers/{dossier['id']}/"
    s3, bucket = aws.client("s3"), aws.settings.documents_bucket
    staff.post("/_local/tick", {"time": (completed_on + timedelta(days=364)).isoformat()})
    drain()
    assert staff.get(f"/dossiers/{dossier['id']}").status == 200
    staff.post("/_local/tick", {"time": (completed_on + timedelta(days=366)).isoformat()})
    drain()
    assert staff.get(f"/dossiers/{dossier['id']}").status == 404
    assert s3.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", []) == []
