"""A client generated from openapi.yaml by `openapi-python-client` works against the real local stack:
every model it builds from an answer (nullable enums included) reads what the server really sends."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chalicelib.local.stack import LocalStack
from tests.support import local_stack

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "relais_generated_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    out = tmp_path_factory.mktemp("generated")
    config = out / "config.yaml"
    # No post hooks: the generator's formatting step needs a ruff on PATH and changes no behaviour.
    # The logo's image types are bytes to the generator, as application/octet-stream is.
    config.write_text(
        f"post_hooks: []\npackage_name_override: {PACKAGE}\n"
        "content_type_overrides:\n"
        "  image/png: application/octet-stream\n"
        "  image/jpeg: application/octet-stream\n"
    )
    ran = subprocess.run(
        [
            str(Path(sys.executable).with_name("openapi-python-client")),
            "generate",
            "--path",
            str(ROOT / "openapi.yaml"),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(out / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Warning" not in ran.stdout + ran.stderr, ran.stdout + ran.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack() as running:
        yield running


def call(module: str, generated: ModuleType, *args: Any, **kwargs: Any) -> Any:
    """One operation through the generated client; its parsed answer, which must not be an Error."""
    operation = importlib.import_module(f"{generated.__name__}.api.{module}")
    answer = operation.sync_detailed(*args, **kwargs)
    assert 200 <= answer.status_code < 300, answer.content
    assert answer.parsed is not None
    assert type(answer.parsed).__name__ != "Error", answer.content
    return answer.parsed


def test_a_generated_client_runs_the_partner_scenario_against_the_local_stack(
    generated: ModuleType, stack: LocalStack
) -> None:
    models = importlib.import_module(f"{generated.__name__}.models")
    platform = generated.AuthenticatedClient(base_url=stack.api_url, token=stack.platform_admin_token)
    staff = generated.AuthenticatedClient(base_url=stack.api_url, token=stack.admin_token)

    account = call(
        "admin.create_account",
        generated,
        client=platform,
        body=models.CreateAccountRequest.from_dict(
            {"name": "Cabinet Bernard", "plan": "platinum", "sender_email": "bernard@cabinet.fr"}
        ),
    )
    assert account.name == "Cabinet Bernard"

    apporteur = call(
        "partners.create_apporteur",
        generated,
        client=staff,
        body=models.ApporteurRequest.from_dict(
            {
                "name": "Courtage Ouest",
                "email": "a@ouest.fr",
                "commissioning": {"communication_rule": "apporteur"},
            }
        ),
    )
    dupont = call(
        "partners.create_client",
        generated,
        client=staff,
        body=models.ClientRequest.from_dict({"name": "Jean Dupont", "email": "jean@dupont.fr"}),
    )
    prefilled = call(
        "partners.create_contract",
        generated,
        client=staff,
        body=models.ContractRequest.from_dict(
            {"client_id": dupont.id, "reference": "HAB-1", "apporteur_id": apporteur.id}
        ),
    )
    explicit = call(
        "partners.create_contract",
        generated,
        client=staff,
        body=models.ContractRequest.from_dict(
            {"client_id": dupont.id, "reference": "HAB-2", "commissioning": {"communication_rule": "client"}}
        ),
    )
    assert prefilled.commissioning.prefilled_from.value == "apporteur"
    assert explicit.commissioning.prefilled_from is None

    listed = call("partners.list_contracts", generated, client=staff, client_id=dupont.id)
    assert sorted(c.reference for c in listed.items) == ["HAB-1", "HAB-2"]
    assert listed.next_cursor is None
    fetched = call("partners.get_contract", generated, explicit.id, client=staff)
    assert fetched.commissioning.prefilled_from is None

    without_contract = call("partners.get_client_recipients", generated, dupont.id, client=staff)
    assert without_contract.rule is None
    assert [r.email for r in without_contract.to] == ["jean@dupont.fr"]
    with_contract = call(
        "partners.get_client_recipients", generated, dupont.id, client=staff, contract_id=prefilled.id
    )
    assert with_contract.decided_by is not None
