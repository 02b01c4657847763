"""The events of a dossier's change are read off the dossier before and after it, in an order that reads
well, with ids that keep that order even within one second."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from chalicelib.domain.dossier_events import record_events
from chalicelib.domain.dossiers import Contributor, Dossier, Person, Upload, UploadStatus
from chalicelib.domain.events import SYSTEM, EventType, next_event_id, participant, staff
from chalicelib.domain.procedures import DocumentRequirement, Procedure, Role

AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
STAFF = staff("user-1")


def _dossier() -> Dossier:
    procedure = Procedure(
        "proc_1",
        "acc_1",
        "Demande de location",
        None,
        (Role("main", "Locataire"), Role("garant", "Garant")),
        (
            DocumentRequirement("identite", "Pièce d'identité"),
            DocumentRequirement("salaires", "Salaires", role_id="garant"),
        ),
        (),
        AT,
    )
    return Dossier.open("dos_1", procedure, "LOC-1", Person("Léa Martin", "lea@exemple.fr"), None, AT)


def _upload(upload_id: str, document_id: str, status: UploadStatus, by: str = "main") -> Upload:
    return Upload(upload_id, document_id, "id.pdf", "application/pdf", 1234, "k", status, AT, uploaded_by=by)


def _types(before: Dossier | None, after: Dossier) -> list[str]:
    return [e.type.value for e in record_events(before, after, STAFF, AT)[1]]


def test_a_new_dossier_reports_that_it_was_created_with_its_ids_and_status() -> None:
    dossier = _dossier()
    recorded, (event,) = record_events(None, dossier, STAFF, AT)
    assert (event.type, event.actor, event.at) == (EventType.DOSSIER_CREATED, STAFF, AT)
    assert event.data == {
        "dossier_id": "dos_1",
        "procedure_id": "proc_1",
        "reference": "LOC-1",
        "dossier_status": "in_progress",
    }
    assert recorded.last_event_id == event.id


def test_a_change_that_changes_nothing_reports_nothing() -> None:
    dossier = _dossier()
    assert record_events(dossier, dossier, STAFF, AT) == (dossier, ())


def test_a_new_contributor_is_reported_invited_and_a_finished_role_names_who_holds_it() -> None:
    dossier = _dossier()
    invited = dossier.with_contributor(Contributor("ctb_1", "garant", "Paul", "paul@exemple.fr", AT))
    _, (event,) = record_events(dossier, invited, SYSTEM, AT)
    assert (event.type, event.data["contributor_id"], event.data["role_id"]) == (
        EventType.CONTRIBUTOR_INVITED,
        "ctb_1",
        "garant",
    )
    finished = replace(invited, finished_roles=("garant", "main"))
    _, events = record_events(invited, finished, participant("ctb_1", "Paul"), AT)
    assert [(e.type, e.data["contributor_id"]) for e in events] == [
        (EventType.CONTRIBUTOR_FINISHED, "ctb_1"),
        (EventType.CONTRIBUTOR_FINISHED, "main"),
    ]


def test_only_a_file_that_passed_its_check_reports_a_document_uploaded() -> None:
    started = replace(_dossier(), uploads=(_upload("up_1", "identite", UploadStatus.PENDING),))
    refused = replace(started, uploads=(_upload("up_1", "identite", UploadStatus.REJECTED),))
    assert _types(started, refused) == []
    accepted = replace(started, uploads=(_upload("up_1", "identite", UploadStatus.ACCEPTED),))
    _, (event,) = record_events(started, accepted, participant("main", "Léa Martin"), AT)
    assert event.type is EventType.DOCUMENT_UPLOADED
    assert {k: event.data[k] for k in ("document_id", "role_id", "file_id", "filename", "size")} == {
        "document_id": "identite",
        "role_id": "main",
        "file_id": "up_1",
        "filename": "id.pdf",
        "size": 1234,
    }
    assert _types(accepted, accepted) == []


def test_a_change_applied_again_to_a_dossier_that_already_holds_it_reports_nothing() -> None:
    """What a change re-applied after a lost version race sees: the winner made the same change."""
    started = replace(_dossier(), uploads=(_upload("up_1", "identite", UploadStatus.PENDING),))
    settled = replace(started, uploads=(_upload("up_1", "identite", UploadStatus.ACCEPTED),))
    assert _types(started, settled) == ["document.uploaded"]
    assert _types(settled, settled) == []


def test_reviews_report_the_rejection_with_its_comment_and_the_last_approval_completes_the_dossier() -> None:
    uploads = (
        _upload("up_1", "identite", UploadStatus.ACCEPTED),
        _upload("up_2", "salaires", UploadStatus.ACCEPTED, by="ctb_1"),
    )
    dossier = replace(_dossier(), uploads=uploads)
    rejected, _ = dossier.reviewed("identite", False, "Illisible", AT)
    _, (event,) = record_events(dossier, rejected, STAFF, AT)
    assert (event.type, event.data["comment"], event.data["document_status"]) == (
        EventType.DOCUMENT_REJECTED,
        "Illisible",
        "missing",
    )
    one, _ = dossier.reviewed("identite", True, None, AT)
    assert _types(dossier, one) == ["document.approved"]
    both, _ = one.reviewed("salaires", True, None, AT)
    recorded, events = record_events(one, both, STAFF, AT)
    assert [e.type.value for e in events] == ["document.approved", "dossier.completed"]
    assert events[1].data["dossier_status"] == "completed"
    assert events[0].id < events[1].id == recorded.last_event_id


def test_event_ids_follow_the_dossiers_newest_one_even_within_the_same_second() -> None:
    first = next_event_id(AT, "")
    ids = [first]
    for _ in range(50):
        ids.append(next_event_id(AT, ids[-1]))
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("evt_") and len(i) == 30 for i in ids)
    later = next_event_id(AT.replace(second=1), ids[-1])
    assert later > ids[-1]
