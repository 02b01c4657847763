"""Partner records through the HTTP API: apporteurs, clients, products, contracts and projects, prefill,
filters, versions, validation and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api, token


def _open(platform: Api, plan: str = "premium") -> Api:
    body = {"name": "Cabinet Martin", "plan": plan, "sender_email": "contact@martin.fr"}
    return platform.as_(token("manager", platform.post("/admin/accounts", body).body["id"]))


@pytest.fixture
def staff(platform: Api) -> Api:
    return _open(platform)


def _create(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, body)
    assert answer.status == 201, answer.body
    return dict(answer.body)


def test_an_apporteur_is_created_read_listed_and_changed_at_its_version(staff: Api) -> None:
    apporteur = _create(
        staff,
        "/apporteurs",
        {
            "name": "Courtage Ouest",
            "email": "a@ouest.fr",
            "commissioning": {"commission_rate": "15", "communication_rule": "apporteur"},
        },
    )
    assert apporteur["commissioning"] == {"commission_rate": "15", "communication_rule": "apporteur"}
    assert apporteur["version"] == 1
    assert staff.get(f"/apporteurs/{apporteur['id']}").body == apporteur
    assert staff.get("/apporteurs").body == {"items": [apporteur], "next_cursor": None}
    changed = staff.patch(f"/apporteurs/{apporteur['id']}", {"email": None, "version": 1})
    assert changed.status == 200
    assert (changed.body["email"], changed.body["version"]) == (None, 2)
    stale = staff.patch(f"/apporteurs/{apporteur['id']}", {"name": "Autre", "version": 1})
    assert stale.status == 409


def test_the_commissioning_block_defaults_to_no_rate_and_the_client_rule(staff: Api) -> None:
    client = _create(staff, "/clients", {"name": "Jean Dupont"})
    assert client["commissioning"] == {"commission_rate": None, "communication_rule": "client"}
    assert client["email"] is None
    assert client["preferred_apporteur_id"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A", "commissioning": {"commission_rate": "101"}}, "commissioning.commission_rate"),
        ({"name": "A", "commissioning": {"commission_rate": "-1"}}, "commissioning.commission_rate"),
        ({"name": "A", "commissioning": {"commission_rate": 12.5}}, "commissioning.commission_rate"),
        ({"name": "A", "commissioning": {"commission_rate": "NaN"}}, "commissioning.commission_rate"),
        ({"name": "A", "commissioning": {"commission_rate": "1.23456"}}, "commissioning.commission_rate"),
        ({"name": "A", "commissioning": {"communication_rule": "both"}}, "commissioning.communication_rule"),
        ({"name": "A", "commissioning": {"extra": 1}}, "commissioning.extra"),
        ({"name": "A", "email": "not-an-email"}, "email"),
        ({"name": "A\r\nBcc: x@y.fr"}, "name"),
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "A", "phone": "06"}, "phone"),
    ],
)
def test_an_invalid_apporteur_is_refused_naming_the_field(
    staff: Api, body: dict[str, Any], field: str
) -> None:
    answer = staff.post("/apporteurs", body)
    assert answer.status == 400
    assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_a_client_can_only_prefer_an_apporteur_of_its_account(platform: Api, staff: Api) -> None:
    other = _open(platform)
    foreign = _create(other, "/apporteurs", {"name": "Ailleurs"})
    answer = staff.post("/clients", {"name": "Jean", "preferred_apporteur_id": foreign["id"]})
    assert answer.status == 400
    assert answer.body["error"]["details"] == [
        {"field": "preferred_apporteur_id", "issue": "no such apporteur"}
    ]


def _portfolio(staff: Api) -> dict[str, dict[str, Any]]:
    """EXAMPLES.md "Commissioning prefill": client C prefers A; B is another apporteur."""
    a = _create(
        staff,
        "/apporteurs",
        {
            "name": "A",
            "email": "a@a.fr",
            "commissioning": {"commission_rate": "15", "communication_rule": "apporteur"},
        },
    )
    b = _create(
        staff,
        "/apporteurs",
        {
            "name": "B",
            "email": "b@b.fr",
            "commissioning": {"commission_rate": "8", "communication_rule": "client"},
        },
    )
    c = _create(
        staff,
        "/clients",
        {
            "name": "C",
            "email": "c@c.fr",
            "preferred_apporteur_id": a["id"],
            "commissioning": {"commission_rate": "10", "communication_rule": "client_and_apporteur"},
        },
    )
    return {"A": a, "B": b, "C": c}


def test_prefill_follows_the_worked_example(staff: Api) -> None:
    p = _portfolio(staff)
    from_client = _create(
        staff, "/contracts", {"client_id": p["C"]["id"], "reference": "K1", "apporteur_id": p["A"]["id"]}
    )
    assert from_client["commissioning"] == {
        "commission_rate": "10",
        "communication_rule": "client_and_apporteur",
        "prefilled_from": "client",
    }
    assert from_client["status"] == "active"
    from_apporteur = _create(
        staff, "/contracts", {"client_id": p["C"]["id"], "reference": "K2", "apporteur_id": p["B"]["id"]}
    )
    assert from_apporteur["commissioning"] == {
        "commission_rate": "8",
        "communication_rule": "client",
        "prefilled_from": "apporteur",
    }
    explicit = _create(
        staff,
        "/contracts",
        {
            "client_id": p["C"]["id"],
            "reference": "K3",
            "apporteur_id": p["B"]["id"],
            "commissioning": {"commission_rate": "12", "communication_rule": "apporteur"},
        },
    )
    assert explicit["commissioning"] == {
        "commission_rate": "12",
        "communication_rule": "apporteur",
        "prefilled_from": None,
    }
    moved = staff.patch(f"/contracts/{explicit['id']}", {"apporteur_id": p["A"]["id"], "version": 1})
    assert moved.status == 200
    assert moved.body["commissioning"] == {
        "commission_rate": "10",
        "communication_rule": "client_and_apporteur",
        "prefilled_from": "client",
    }
    assert moved.body["version"] == 2


def test_a_project_is_a_deal_with_its_own_statuses(staff: Api) -> None:
    p = _portfolio(staff)
    project = _create(staff, "/projects", {"client_id": p["C"]["id"], "reference": "P1"})
    assert project["status"] == "open"
    assert staff.patch(f"/projects/{project['id']}", {"status": "won", "version": 1}).body["status"] == "won"
    assert staff.patch(f"/projects/{project['id']}", {"status": "active", "version": 2}).status == 400
    assert (
        staff.post("/contracts", {"client_id": p["C"]["id"], "reference": "K", "status": "won"}).status == 400
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reference": "K"}, "client_id"),
        ({"client_id": "nope", "reference": "K"}, "client_id"),
        ({"client_id": "{C}", "reference": "K", "apporteur_id": "nope"}, "apporteur_id"),
        ({"client_id": "{C}", "reference": "K", "product_id": "nope"}, "product_id"),
        ({"client_id": "{C}"}, "reference"),
        ({"client_id": "{C}", "reference": "K", "status": "dead"}, "status"),
    ],
)
def test_an_invalid_contract_is_refused_naming_the_field(
    staff: Api, body: dict[str, Any], field: str
) -> None:
    client = _create(staff, "/clients", {"name": "C"})
    body = {k: (client["id"] if v == "{C}" else v) for k, v in body.items()}
    answer = staff.post("/contracts", body)
    assert answer.status == 400
    assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_a_contract_patch_needs_the_version_it_read(staff: Api) -> None:
    client = _create(staff, "/clients", {"name": "C"})
    contract = _create(staff, "/contracts", {"client_id": client["id"], "reference": "K"})
    missing = staff.patch(f"/contracts/{contract['id']}", {"reference": "K2"})
    assert missing.status == 400
    assert staff.patch(f"/contracts/{contract['id']}", {"reference": "K2", "version": 1}).status == 200
    assert staff.patch(f"/contracts/{contract['id']}", {"reference": "K3", "version": 1}).status == 409


def test_filters_are_served_page_by_page_with_stable_cursors(staff: Api) -> None:
    p = _portfolio(staff)
    made = []
    for n in range(7):
        body = {"client_id": p["C"]["id"], "reference": f"K{n}"}
        if n % 2 == 0:
            body["apporteur_id"] = p["A"]["id"]
        made.append(_create(staff, "/contracts", body))
    with_a = [c["id"] for c in made if c["apporteur_id"]]
    without = [c["id"] for c in made if not c["apporteur_id"]]
    for query, expected in [
        (f"apporteur_id={p['A']['id']}", with_a),
        ("communication_rule=client_and_apporteur", with_a),
        ("communication_rule=none", without),
        ("communication_rule=client", []),
        (f"client_id={p['C']['id']}", [c["id"] for c in made]),
        ("status=active", [c["id"] for c in made]),
        (f"status=active&communication_rule=none&client_id={p['C']['id']}", without),
    ]:
        seen, cursor = [], None
        while True:
            path = f"/contracts?{query}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            answer = staff.get(path)
            assert answer.status == 200, (query, answer.body)
            assert len(answer.body["items"]) <= 2
            seen += [c["id"] for c in answer.body["items"]]
            cursor = answer.body["next_cursor"]
            if not cursor:
                break
        assert seen == expected, query


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("communication_rule=both", "communication_rule"),
        ("status=won", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=abc", "limit"),
        ("cursor=garbage", "cursor"),
        ("sort=name", "sort"),
    ],
)
def test_bad_query_parameters_are_refused(staff: Api, query: str, field: str) -> None:
    answer = staff.get(f"/contracts?{query}")
    assert answer.status == 400
    assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_a_cursor_of_another_list_is_refused_not_a_server_error(staff: Api) -> None:
    p = _portfolio(staff)
    for n in range(3):
        _create(
            staff,
            "/contracts",
            {"client_id": p["C"]["id"], "reference": f"K{n}", "apporteur_id": p["A"]["id"]},
        )
    cursor = staff.get("/contracts?communication_rule=client_and_apporteur&limit=1").body["next_cursor"]
    assert cursor
    for path in (
        f"/contracts?status=active&cursor={cursor}",
        f"/contracts?cursor={cursor}",
        f"/clients?cursor={cursor}",
    ):
        answer = staff.get(path)
        assert answer.status == 400, path
        assert answer.body["error"]["details"][0]["field"] == "cursor"


def test_another_accounts_records_are_not_found(platform: Api, staff: Api) -> None:
    p = _portfolio(staff)
    contract = _create(staff, "/contracts", {"client_id": p["C"]["id"], "reference": "K"})
    other = _open(platform)
    for path in (
        f"/apporteurs/{p['A']['id']}",
        f"/clients/{p['C']['id']}",
        f"/contracts/{contract['id']}",
        f"/clients/{p['C']['id']}/recipients",
        f"/clients/{p['C']['id']}/communications",
    ):
        assert other.get(path).status == 404, path
    assert other.patch(f"/contracts/{contract['id']}", {"reference": "X", "version": 1}).status == 404
    assert other.post(f"/clients/{p['C']['id']}/emails", {"subject": "s", "body": "b"}).status == 404
    assert other.get("/contracts").body["items"] == []
    assert other.post("/contracts", {"client_id": p["C"]["id"], "reference": "K"}).status == 400


def test_a_platform_administrator_may_not_touch_an_accounts_portfolio(platform: Api) -> None:
    assert platform.get("/contracts").status == 403
    assert platform.post("/clients", {"name": "C"}).status == 403
