"""openapi.yaml against the Chalice app: the same operations on both sides, the local-only routes marked and
absent from a deployed stage, security and error answers as the routes declare them, and a valid OpenAPI 3.0
document. The app is imported in-process with the local stage (tests/conftest.py); the prod stage is imported
in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "openapi.yaml"
LOCAL_PREFIX = "/_local"
LOCAL_ONLY = "x-relais-local-only"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
SCHEME_OF_AUTHORIZER = {"staff_authorizer": "staffBearer", "portal_authorizer": "portalBearer"}
ERROR_CODE_OF_STATUS = {
    "400": "validation_error",
    "401": "unauthorized",
    "402": "feature_locked",
    "403": "forbidden",
    "404": "not_found",
    "405": "method_not_allowed",
    "409": "conflict",
    "413": "payload_too_large",
    "415": "unsupported_media_type",
    "500": "internal_error",
}
PROD_ROUTES_SCRIPT = (
    "import json, app; "
    "routes = [[path, method] for path, methods in app.app.routes.items() for method in methods]; "
    "print(json.dumps(sorted(routes)))"
)

Operation = tuple[str, str]
"""(path, METHOD), e.g. ("/admin/accounts/{account_id}", "PATCH")."""


def is_local_path(path: str) -> bool:
    return path == LOCAL_PREFIX or path.startswith(LOCAL_PREFIX + "/")


def show(operations: set[Operation] | list[Operation]) -> str:
    return ", ".join(f"{method} {path}" for path, method in sorted(operations)) or "none"


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (`#/components/...`) until a node without one."""
    while "$ref" in node:
        reference = node["$ref"]
        assert reference.startswith("#/"), f"only local references are expected, not {reference}"
        target: Any = spec
        for part in reference[2:].split("/"):
            target = target[part]
        node = target
    return node


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "openapi.yaml must hold one mapping"
    return document


@pytest.fixture(scope="module")
def described(spec: dict[str, Any]) -> dict[Operation, dict[str, Any]]:
    """Every operation of openapi.yaml."""
    return {
        (path, method.upper()): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


@pytest.fixture(scope="module")
def served() -> dict[Operation, Any]:
    """Every route of the app as imported in-process (local stage), with its Chalice RouteEntry."""
    assert os.environ.get("RELAIS_STAGE") == "local", "tests/conftest.py should have set the local stage"
    import app

    return {
        (path, method): entry for path, methods in app.app.routes.items() for method, entry in methods.items()
    }


@pytest.fixture(scope="module")
def prod_routes() -> set[Operation]:
    """The routes of the app imported in a fresh interpreter with RELAIS_STAGE=prod."""
    environment = {**os.environ, "RELAIS_STAGE": "prod"}
    result = subprocess.run(
        [sys.executable, "-c", PROD_ROUTES_SCRIPT],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"importing app with RELAIS_STAGE=prod failed:\n{result.stderr}"
    last_line = result.stdout.strip().splitlines()[-1]
    return {(path, method) for path, method in json.loads(last_line)}


def test_every_chalice_route_is_described_in_openapi(
    served: dict[Operation, Any], described: dict[Operation, dict[str, Any]]
) -> None:
    missing = set(served) - set(described)
    assert not missing, f"routes served by the app but missing from openapi.yaml: {show(missing)}"


def test_openapi_describes_no_route_the_app_lacks(
    served: dict[Operation, Any], described: dict[Operation, dict[str, Any]]
) -> None:
    extra = set(described) - set(served)
    assert not extra, f"operations in openapi.yaml that the app does not serve: {show(extra)}"


def test_exactly_the_operations_under_local_are_marked_local_only(
    described: dict[Operation, dict[str, Any]],
) -> None:
    marked = {operation for operation, body in described.items() if body.get(LOCAL_ONLY) is True}
    under_local = {operation for operation in described if is_local_path(operation[0])}
    assert under_local, f"openapi.yaml should describe the {LOCAL_PREFIX} routes of the local stage"
    assert marked - under_local == set(), (
        f"marked {LOCAL_ONLY} outside {LOCAL_PREFIX}: {show(marked - under_local)}"
    )
    assert under_local - marked == set(), (
        f"under {LOCAL_PREFIX} but not marked {LOCAL_ONLY}: {show(under_local - marked)}"
    )


def test_an_app_imported_for_prod_serves_no_local_only_operation(
    prod_routes: set[Operation], described: dict[Operation, dict[str, Any]]
) -> None:
    local_only = {operation for operation, body in described.items() if body.get(LOCAL_ONLY) is True}
    under_local = {operation for operation in prod_routes if is_local_path(operation[0])}
    leaked = (prod_routes & local_only) | under_local
    assert not leaked, f"the prod stage serves local-only routes: {show(leaked)}"


def test_an_app_imported_for_prod_serves_every_operation_not_marked_local_only(
    prod_routes: set[Operation], described: dict[Operation, dict[str, Any]]
) -> None:
    deployed = {operation for operation, body in described.items() if body.get(LOCAL_ONLY) is not True}
    assert prod_routes == deployed, (
        f"prod lacks: {show(deployed - prod_routes)}; prod has undescribed: {show(prod_routes - deployed)}"
    )


def test_the_document_is_a_valid_openapi_3_0_document(spec: dict[str, Any]) -> None:
    import openapi_spec_validator as validator
    from openapi_spec_validator.validation import exceptions

    assert str(spec.get("openapi", "")).startswith("3.0."), "openapi.yaml should declare OpenAPI 3.0.x"
    try:
        validator.validate(spec, cls=validator.OpenAPIV30SpecValidator)
    except exceptions.OpenAPIValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(document)"
        pytest.fail(f"openapi.yaml is not valid OpenAPI 3.0 at {where}: {error.message}", pytrace=False)


def test_every_operation_is_secured_as_its_chalice_authorizer_says(
    spec: dict[str, Any], served: dict[Operation, Any], described: dict[Operation, dict[str, Any]]
) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert {"staffBearer", "portalBearer"} <= set(schemes), "both bearer schemes should be declared"
    wrong = []
    for operation in sorted(set(served) & set(described)):
        authorizer = served[operation].authorizer
        expected = [{SCHEME_OF_AUTHORIZER[authorizer.name]: []}] if authorizer else []
        if described[operation].get("security") != expected:
            wrong.append(f"{show([operation])} should declare security {expected}")
    assert not wrong, "\n".join(wrong)


def test_every_operation_documents_the_errors_it_can_answer(
    described: dict[Operation, dict[str, Any]],
) -> None:
    gaps = []
    for operation, body in sorted(described.items()):
        expected = {"500"}
        if body.get("security"):
            expected.add("401")
        if "requestBody" in body:
            expected |= {"400", "413", "415"}
        missing = expected - set(body.get("responses", {}))
        if missing:
            gaps.append(f"{show([operation])} lacks {', '.join(sorted(missing))}")
    assert not gaps, "\n".join(gaps)


def test_every_error_answer_is_a_reusable_response_showing_the_code_of_its_status(
    spec: dict[str, Any], described: dict[Operation, dict[str, Any]]
) -> None:
    wrong = []
    for operation, body in sorted(described.items()):
        for status, answer in body.get("responses", {}).items():
            if not str(status).startswith(("4", "5")):
                continue
            where = f"{show([operation])} {status}"
            if not answer.get("$ref", "").startswith("#/components/responses/"):
                wrong.append(f"{where} should reference components/responses")
                continue
            media = resolve(spec, answer)["content"]["application/json"]
            if media["schema"] != {"$ref": "#/components/schemas/Error"}:
                wrong.append(f"{where} should use the Error schema")
            if media.get("example", {}).get("error", {}).get("code") != ERROR_CODE_OF_STATUS.get(str(status)):
                wrong.append(f"{where} should show the code {ERROR_CODE_OF_STATUS.get(str(status))}")
    assert not wrong, "\n".join(wrong)


def test_every_request_body_refuses_unknown_fields(
    spec: dict[str, Any], described: dict[Operation, dict[str, Any]]
) -> None:
    open_bodies = []
    for operation, body in sorted(described.items()):
        # Only JSON bodies are parsed field by field; the one-click unsubscribe form body is not read.
        if "application/json" not in body.get("requestBody", {}).get("content", {}):
            continue
        schema = resolve(spec, body["requestBody"]["content"]["application/json"]["schema"])
        if schema.get("additionalProperties") is not False:
            open_bodies.append(show([operation]))
    assert not open_bodies, f"request bodies without additionalProperties: false: {', '.join(open_bodies)}"


def _schemas_in(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _schemas_in(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schemas_in(value, f"{where}/{index}")


def test_every_nullable_enum_lists_null_so_generated_clients_accept_it(spec: dict[str, Any]) -> None:
    missing = [
        where
        for where, node in _schemas_in(spec)
        if node.get("nullable") is True and "enum" in node and None not in node["enum"]
    ]
    assert not missing, f"nullable enums without null: {', '.join(missing)}"


def test_every_post_that_takes_an_idempotency_key_documents_its_409(
    described: dict[Operation, dict[str, Any]],
) -> None:
    key = {"$ref": "#/components/parameters/IdempotencyKey"}
    lacking = [
        show([operation])
        for operation, body in sorted(described.items())
        if key in body.get("parameters", []) and "409" not in body.get("responses", {})
    ]
    assert not lacking, f"reused Idempotency-Key answers 409, undocumented on: {', '.join(lacking)}"


def test_every_id_in_a_path_and_the_cursor_have_a_documented_form(
    spec: dict[str, Any], described: dict[Operation, dict[str, Any]], served: dict[Operation, Any]
) -> None:
    loose = []
    for path, item in spec["paths"].items():
        for method, body in item.items():
            if method not in HTTP_METHODS:
                continue
            for parameter in [*item.get("parameters", []), *body.get("parameters", [])]:
                parameter = resolve(spec, parameter)
                schema = parameter.get("schema", {})
                constrained = schema.get("pattern") and schema.get("maxLength")
                is_id = parameter["in"] == "path" and "enum" not in schema
                if (is_id or parameter["name"] == "cursor") and not constrained:
                    loose.append(f"{method.upper()} {path} {parameter['name']}")
    assert not loose, "parameters without pattern and maxLength: " + ", ".join(sorted(set(loose)))


def test_the_description_promises_no_route_that_is_served_already(spec: dict[str, Any]) -> None:
    text = yaml.safe_dump(spec)
    assert "not served yet" not in text
    assert "26-character" not in text
