"""Least privilege, proven: each function does its real work with only its own policy of `policies/`, and
removing any one statement breaks that work (issue 17). test_policies.py holds the static rules (exact
actions, Relais's own resources).

How. An IAM user per function is created on moto with exactly its policy, and the function's work runs
with that user's keys (a botocore `before-sign` hook signs every call the function makes with them) under
moto's IAM enforcement (`INITIAL_NO_AUTH_ACTION_COUNT` 0, as `moto.core.authorization` sets it). The world
the work needs (an account, a dossier, queued messages) is set up before, without enforcement.

What moto enforces, read in moto 5.2 (`core/responses.py` `call_action`, `core/authorization.py`,
`iam/access_control.py`, `sqs/responses.py`, `s3/responses.py`), and what this module does about it:
- SQS: the action is the API operation and the resource the queue's ARN. AWS authorizes
  SendMessageBatch, DeleteMessageBatch and ChangeMessageVisibilityBatch by SendMessage, DeleteMessage and
  ChangeMessageVisibility, and GetQueueUrl on the named queue, where moto names no queue: both are given
  to moto as AWS names them.
- DynamoDB: the action is checked, but moto names no resource (`*`, which no statement naming the table
  matches): moto is given the ARN of the table, or of the index, the request names, as AWS checks it. A
  transaction has no IAM action of its own: AWS checks each of its items (PutItem, UpdateItem, DeleteItem,
  ConditionCheckItem, GetItem), and so is moto told to.
- S3: bucket and key ARNs are checked (DeleteObjects: moto checks the bucket, AWS each key, as moto is
  told here); a statement with a Condition (`s3:prefix` on ListBucketVersions)
  never matches, as moto passes no request context: such statements are proven statically.
- SES: moto names no resource, and AWS authorizes `ses:SendEmail` on two, the sending identity and the
  configuration set: moto is given the identity the request sends from; the configuration set is proven
  statically.
- CloudWatch Logs: the Lambda service writes a function's logs with its role, never its code: the calls
  it makes (CreateLogGroup, CreateLogStream, PutLogEvents on `/aws/lambda/<function's name>`) are added
  to the recorded ones and proven statically.

Statically: every call a function makes during its work is recorded (a `before-parameter-build` hook)
as the IAM action and resources AWS authorizes it on, and a small evaluator (Action and Resource with `*`
and `?` wildcards, StringLike conditions) shows that each call is allowed by a statement of the function's
policy, and that removing any statement leaves a recorded call unallowed. Where moto enforces every
action of a statement, the test also runs the work again without it and sees it refused (AccessDenied).

No `*` action anywhere. A bare `*` resource only where AWS authorizes an action on no resource at all
(X-Ray's PutTraceSegments and PutTelemetryRecords, CloudWatch's PutMetricData: `BARE_STAR_ACTIONS` of
test_policies.py); no policy of Relais grants one today. `ses:SendEmail` on the sending identity (the
`SenderAddress` parameter, or its domain), which a static policy file cannot name, is granted by a policy the
merge template attaches to the worker's role: it is read from infra/resources.yaml and checked with the file.
- SSM: a deployed function reads its secrets from Parameter Store at its cold start, where the local stage
  reads plain values: the GetParameter calls on what its packaged environment names are added to the
  recorded ones and proven statically (test_packaging.py runs the packaged handlers reading them on moto).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.handlers import BUILTIN_HANDLERS
from moto.core.models import DEFAULT_ACCOUNT_ID
from pynamodb.exceptions import PynamoDBException

from chalicelib import wiring
from chalicelib.adapters.sqs import SqsQueue
from chalicelib.local import pumps
from chalicelib.local.provision import load_template, render_policy
from chalicelib.local.stack import REGION
from chalicelib.wiring import Container
from tests.support import Api, RelaisTestClient, open_account, token

ROOT = Path(__file__).resolve().parents[2]
SENDER = "notifications@relais.example"
"""The local stage's sender address (RELAIS_FROM_ADDRESS), as `SenderAddress` names it in a stack."""
TEMPLATE = load_template()


def _function_resource(function: str) -> tuple[str, dict[str, Any]]:
    """The merge template's resource of a function (its `FunctionName` is `relais-${Stage}-<function>`)."""
    for logical_id, resource in TEMPLATE["Resources"].items():
        name = resource.get("Properties", {}).get("FunctionName", {})
        if name == {"Fn::Sub": f"relais-${{Stage}}-{function}"}:
            return logical_id, resource
    raise LookupError(function)


def _attached_by_the_template(function: str) -> list[dict[str, Any]]:
    """The statements infra/resources.yaml attaches to the function's role beside its policy file: what a
    static file cannot name (the sending identity is the `SenderAddress` parameter)."""
    logical_id, _ = _function_resource(function)
    return [
        statement
        for resource in TEMPLATE["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": f"{logical_id}Role"} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def _deployed_policy(path: Path) -> dict[str, Any]:
    """A function's policy as its stack grants it, resolved for the local stage's resources the tests run on:
    its policy file, and what the template attaches to its role (each extra statement named `Template<n>`)."""
    document = json.loads(path.read_text())
    extras = [{"Sid": f"Template{n}", **s} for n, s in enumerate(_attached_by_the_template(path.stem))]
    document["Statement"] += extras
    return render_policy(document, "local", DEFAULT_ACCOUNT_ID, REGION, {"SenderAddress": SENDER})


POLICIES = {path.stem: _deployed_policy(path) for path in sorted((ROOT / "policies").glob("*.json"))}
SQS_IAM_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
DENIED = {"AccessDenied", "AccessDeniedException"}


# ---- what AWS authorizes a call on ----


@dataclass(frozen=True)
class Call:
    """One authorization AWS makes for a call: an IAM action on a resource, with its condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{DEFAULT_ACCOUNT_ID}:{resource}"


def _queue_arn(params: dict[str, Any]) -> str:
    name = params.get("QueueName") or urlsplit(str(params["QueueUrl"])).path.rstrip("/").split("/")[-1]
    return _arn("sqs", str(name))


def _tables(params: dict[str, Any]) -> list[str]:
    """The table (or index) ARNs a DynamoDB request names."""
    names: list[tuple[str, str | None]] = []
    if "TableName" in params:
        names.append((params["TableName"], params.get("IndexName")))
    for entry in params.get("TransactItems", []):
        for operation in entry.values():
            names.append((operation["TableName"], None))
    names.extend((table, None) for table in params.get("RequestItems", {}))
    return sorted({_arn("dynamodb", f"table/{t}" + (f"/index/{i}" if i else "")) for t, i in names})


def _s3_calls(operation: str, params: dict[str, Any]) -> list[Call]:
    bucket = params["Bucket"]
    if operation == "ListObjectVersions":
        return [
            Call(
                "s3:ListBucketVersions", f"arn:aws:s3:::{bucket}", (("s3:prefix", params.get("Prefix", "")),)
            )
        ]
    if operation == "DeleteObjects":
        return [
            Call(
                "s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                f"arn:aws:s3:::{bucket}/{o['Key']}",
            )
            for o in params["Delete"]["Objects"]
        ]
    if "Key" not in params:
        return []  # a presigned POST form: its key is in the form, recorded when the browser posts it
    action = {"HeadObject": "GetObject"}.get(operation, operation)
    if params.get("VersionId") and action in ("GetObject", "DeleteObject"):
        action += "Version"
    return [Call(f"s3:{action}", f"arn:aws:s3:::{bucket}/{params['Key']}")]


TRANSACTION_IAM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
"""There is no IAM action for a DynamoDB transaction: AWS authorizes each of its items by the action of
its kind (developer guide, "Using IAM with DynamoDB transactions")."""


def transaction_actions(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(IAM action, table ARN) of each item of a TransactWriteItems or TransactGetItems request."""
    return sorted(
        {
            (f"dynamodb:{TRANSACTION_IAM_ACTIONS[kind]}", _arn("dynamodb", f"table/{operation['TableName']}"))
            for entry in params.get("TransactItems", [])
            for kind, operation in entry.items()
        }
    )


def authorizations(service: str, operation: str, params: dict[str, Any]) -> list[Call]:
    """What AWS authorizes one API call on (the Service Authorization Reference of each service)."""
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return [Call(action, arn) for action, arn in transaction_actions(params)]
    if service == "dynamodb":
        return [Call(f"dynamodb:{operation}", arn) for arn in _tables(params)]
    if service == "sqs":
        return [Call(f"sqs:{SQS_IAM_ACTIONS.get(operation, operation)}", _queue_arn(params))]
    if service == "s3":
        return _s3_calls(operation, params)
    if service == "sesv2" and operation == "SendEmail":
        domain = str(params["FromEmailAddress"]).rstrip(">").rsplit("@", 1)[1]
        calls = [Call("ses:SendEmail", _arn("ses", f"identity/{domain}"))]
        if params.get("ConfigurationSetName"):
            calls.append(
                Call("ses:SendEmail", _arn("ses", f"configuration-set/{params['ConfigurationSetName']}"))
            )
        return calls
    return [Call(f"{service}:{operation}", "*")]


def runtime_secret_calls(function: str) -> list[Call]:
    """What a deployed function reads at its cold start, where the local stage reads plain values: each
    SecureString its packaged environment names (`RELAIS_*_PARAMETER`; test_packaging.py runs the packaged
    handlers reading them from SSM on moto)."""
    _, resource = _function_resource(function)
    variables = resource["Properties"].get("Environment", {}).get("Variables", {})
    named = [v["Ref"] for k, v in variables.items() if k.endswith("_PARAMETER") and isinstance(v, dict)]
    arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${%s}"
    resolved = render_policy(
        {"named": [{"Fn::Sub": arn % n} for n in named]}, "local", DEFAULT_ACCOUNT_ID, REGION
    )
    return [Call("ssm:GetParameter", parameter) for parameter in resolved["named"]]


def runtime_log_calls(function: str) -> list[Call]:
    """What the Lambda service writes with the function's role: its logs (Chalice names the functions
    `relais-<stage>-<function>` in infra/resources.yaml)."""
    name = f"relais-local-{function}"
    group = _arn("logs", f"log-group:/aws/lambda/{name}")
    return [
        Call("logs:CreateLogGroup", group),
        Call("logs:CreateLogStream", f"{group}:log-stream:2027/01/04/[$LATEST]0123456789abcdef"),
        Call("logs:PutLogEvents", f"{group}:log-stream:2027/01/04/[$LATEST]0123456789abcdef"),
    ]


# ---- a small policy evaluator ----


def _matches(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _conditions_hold(statement: dict[str, Any], call: Call) -> bool:
    context = dict(call.context)
    for operator, keys in statement.get("Condition", {}).items():
        if operator != "StringLike":
            raise NotImplementedError(f"the evaluator knows StringLike only, not {operator}")
        for key, patterns in keys.items():
            if key not in context or not any(_matches(p, context[key]) for p in _as_list(patterns)):
                return False
    return True


def allows(statement: dict[str, Any], call: Call) -> bool:
    """Whether one Allow statement grants the call (actions compare without case, as IAM's do)."""
    return (
        statement["Effect"] == "Allow"
        and any(_matches(a, call.action, case_sensitive=False) for a in _as_list(statement["Action"]))
        and any(_matches(r, call.resource) for r in _as_list(statement["Resource"]))
        and _conditions_hold(statement, call)
    )


def unallowed(policy: dict[str, Any], calls: list[Call]) -> list[Call]:
    return [call for call in calls if not any(allows(s, call) for s in policy["Statement"])]


def without(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    return {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != sid]}


def test_the_evaluator_matches_wildcards_and_prefix_conditions() -> None:
    listing = {
        "Effect": "Allow",
        "Action": "s3:ListBucketVersions",
        "Resource": "arn:aws:s3:::relais-documents-*",
        "Condition": {"StringLike": {"s3:prefix": ["accounts/*"]}},
    }
    inside = Call("s3:ListBucketVersions", "arn:aws:s3:::relais-documents-1", (("s3:prefix", "accounts/A/"),))
    assert allows(listing, inside)
    assert not allows(listing, Call(inside.action, inside.resource, (("s3:prefix", "other/"),)))
    assert not allows(listing, Call(inside.action, inside.resource))
    assert not allows(listing, Call("s3:ListBucket", inside.resource, inside.context))
    assert not allows(listing, Call(inside.action, "arn:aws:s3:::someone-else", inside.context))
    assert allows({**listing, "Action": "S3:listbucketversions"}, inside)
    table = {
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem"],
        "Resource": ["arn:aws:dynamodb:*:*:table/relais"],
    }
    assert allows(table, Call("dynamodb:GetItem", _arn("dynamodb", "table/relais")))
    assert not allows(table, Call("dynamodb:GetItem", _arn("dynamodb", "table/relais/index/GSI1")))
    assert not allows(table, Call("dynamodb:GetItem", _arn("dynamodb", "table/relais-other")))


# ---- running a function as its IAM user, under moto's enforcement ----


@dataclass
class Identities:
    """Signs each call with the keys of the function that runs, and records what it was authorized on."""

    services: Container
    acting: str | None = None
    keys: dict[str, Credentials] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)
    users: int = 0

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.acting:
            self.calls.extend(authorizations(model.service_model.service_name, model.name, params))

    def sign(self, request: Any, **_: Any) -> None:
        if self.acting:
            request.context.setdefault("signing", {})["request_credentials"] = self.keys[self.acting]

    def watch(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        parsed = parsed or {}
        codes = {parsed.get("Error", {}).get("Code"), *(e.get("Code") for e in parsed.get("Errors", []))}
        if self.acting and (codes & DENIED or http_response.status_code == 403):
            self.denied.append(f"{model.service_model.service_name}:{model.name}")

    @contextmanager
    def acting_as(self, function: str, policy: dict[str, Any]) -> Iterator[Container]:
        """The function's work, with only `policy`, as a fresh Lambda container would run it."""
        from moto.core.authorization import enable_iam_authentication

        iam = self.services.client("iam")
        self.users += 1
        user = f"{function}-{self.users}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=function, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self.keys[function] = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        wiring.reset()
        container = wiring.container()
        self.calls, self.denied, self.acting = [], [], function
        try:
            with enable_iam_authentication():
                yield container
        finally:
            self.acting = None
            wiring.reset()


def _dynamodb_resource(self: Any) -> str:
    """The ARN of the table (or index) a DynamoDB request names, for moto to check as AWS does."""
    arns = _tables(self.body if isinstance(self.body, dict) else {})
    return arns[0] if arns else "*"


def _ses_resource(self: Any) -> str:
    """The sending identity of an SES request (the one resource AWS always checks `ses:SendEmail` on;
    the configuration set, the other, is proven statically)."""
    sender = str(json.loads(self.body or "{}").get("FromEmailAddress", ""))
    return _arn("ses", f"identity/{sender.rstrip('>').rsplit('@', 1)[-1]}") if "@" in sender else "*"


def _s3_deletes_by_key(original: Callable[..., None]) -> Callable[..., None]:
    """moto authorizes DeleteObjects on the bucket; AWS authorizes each key (DeleteObject, or
    DeleteObjectVersion for a version), which is what a policy naming `<bucket>/accounts/*` grants."""

    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if key_name is not None or self.data.get("Action") != "DeleteObject" or not self.is_delete_keys():
            original(self, bucket_name=bucket_name, key_name=key_name)
            return
        import xmltodict

        objects = xmltodict.parse(self.body)["Delete"].get("Object", [])
        for obj in objects if isinstance(objects, list) else [objects]:
            self.data["Action"] = "DeleteObjectVersion" if obj.get("VersionId") else "DeleteObject"
            original(self, bucket_name=bucket_name, key_name=obj["Key"])
        self.data["Action"] = "DeleteObject"

    return authorize


def _sqs_resource(original: Callable[[Any], str]) -> Callable[[Any], str]:
    def resource(self: Any) -> str:
        if self._get_action() == "GetQueueUrl":
            return _queue_arn({"QueueName": self._get_param("QueueName")})
        return original(self)

    return resource


def _iam_action_names(original: Callable[..., None]) -> Callable[..., None]:
    """moto checks the API operation's name; AWS checks SQS's batches by their single action and a DynamoDB
    transaction by the action of each of its items, on its table."""

    def check(self: Any, resource: str) -> None:
        service, _, operation = self._action.partition(":")
        if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
            for action, table in transaction_actions(json.loads(self._body or "{}")):
                self._action = action
                original(self, table)
            self._action = f"dynamodb:{operation}"
            return
        if service == "sqs":
            self._action = f"sqs:{SQS_IAM_ACTIONS.get(operation, operation)}"
        original(self, resource)

    return check


@pytest.fixture
def identities(
    aws: Container, client: RelaisTestClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Identities]:
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.access_control import IAMRequest
    from moto.s3.responses import S3Response
    from moto.sesv2.responses import SESV2Response
    from moto.sqs.responses import SQSResponse

    monkeypatch.setattr(DynamoHandler, "_determine_resource", _dynamodb_resource, raising=False)
    deletes = _s3_deletes_by_key(S3Response._authenticate_and_authorize_s3_action)
    monkeypatch.setattr(S3Response, "_authenticate_and_authorize_s3_action", deletes)
    monkeypatch.setattr(SESV2Response, "_determine_resource", _ses_resource, raising=False)
    monkeypatch.setattr(SQSResponse, "_determine_resource", _sqs_resource(SQSResponse._determine_resource))
    monkeypatch.setattr(
        IAMRequest, "check_action_permitted", _iam_action_names(IAMRequest.check_action_permitted)
    )
    found = Identities(aws)
    hooks = [
        ("before-parameter-build.*.*", found.record),
        ("before-sign.*.*", found.sign),
        ("after-call.*.*", found.watch),
    ]
    BUILTIN_HANDLERS.extend(hooks)
    wiring.reset()
    found.services = wiring.container()
    yield found
    for hook in hooks:
        BUILTIN_HANDLERS.remove(hook)


# ---- each function's real work ----


@dataclass
class Work:
    """A function's real work: `setup` builds its world (no enforcement), `act` runs the function in the
    container it is given, `worked` says whether the work was done (read afterwards, no enforcement)."""

    setup: Callable[[Api, Identities], dict[str, Any]]
    act: Callable[[dict[str, Any], Container, Identities], None]
    worked: Callable[[dict[str, Any], Container], bool]


def _open_quietly(platform: Api, sender: str = "contact@martin.fr", plan: str = "premium") -> str:
    """An account whose welcome email waits on the communications queue (no worker ran)."""
    body = {"name": "Cabinet Martin", "plan": plan, "sender_email": sender}
    return str(platform.post("/admin/accounts", body).body["id"])


@contextmanager
def outside(found: Identities) -> Iterator[str | None]:
    """Calls made by someone else than the function (the browser, the event source mapping): with the
    test's own keys, not enforced, not recorded; yields the function that was acting."""
    from moto.core.authorization import disable_iam_authentication

    acting, found.acting = found.acting, None
    try:
        with disable_iam_authentication():
            yield acting
    finally:
        found.acting = acting


def _pump(container: Container, queue: str, found: Identities) -> int:
    from chalicelib.handlers import bulk_worker, communications_worker, ses_events, webhook_worker

    handlers = {
        "communications": (
            container.communications_queue,
            "communications_worker",
            communications_worker.handle,
        ),
        "bulk": (container.bulk_queue, "bulk_worker", bulk_worker.handle),
        "ses_events": (container.ses_events_queue, "ses_events", ses_events.handle),
        "webhooks": (container.webhooks_queue, "webhook_worker", webhook_worker.handle),
    }
    adapter, name, handler = handlers[queue]
    # The event source mapping knows its queue by ARN: the pump's own adapter looks its URL up outside the
    # function's identity, so that the function's own lookups (when it sends) still happen in its code.
    sqs = container.client("sqs")
    pump_queue = SqsQueue(sqs, adapter._queue_name)
    with outside(found):
        pump_queue.url  # noqa: B018 (looked up once, as the mapping is configured once)
    return pumps._pump_queue(sqs, pump_queue, name, handler)


def _waiting(container: Container, queue: Any) -> int:
    attributes = container.client("sqs").get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _tick_setup(platform: Api, found: Identities) -> dict[str, Any]:
    _open_quietly(platform)
    services = wiring.container()
    services.client("sqs").purge_queue(QueueUrl=services.communications_queue.url)  # the message is lost
    return {"at": services.now() + timedelta(minutes=6), "queued": []}


def _tick_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    from chalicelib.handlers import dunning_tick

    world["queued"].append(dunning_tick.run(world["at"]))


def _tick_worked(world: dict[str, Any], container: Container) -> bool:
    return world["queued"] == [1] and _waiting(container, container.communications_queue) == 1


def _worker_setup(platform: Api, found: Identities) -> dict[str, Any]:
    """What the communications worker is handed in a day: welcome emails, a formal notice's step (its
    letter is prepared and stored), and a completed dossier whose retention ended (its files erased)."""
    from chalicelib.handlers import dunning_tick
    from chalicelib.services.dossiers import ErasureRequest
    from tests.integration.test_formal_notice import _book, _chalice_office, _paths, paris

    office = _chalice_office(platform.client, wiring.container())
    office.ok("PATCH", "/account/settings", {"partner_communications_enabled": True})
    book = _book(office)
    at = paris("2027-03-12").replace("Z", "+00:00")
    from datetime import datetime

    assert dunning_tick.run(datetime.fromisoformat(at)) >= 1
    world = _dossier(platform)
    upload_id, _ = _uploaded(world, found)
    portal = world["portal"]
    assert portal.post(f"/portal/documents/{world['document']}/uploads/{upload_id}/complete").status == 200
    review = {"decision": "approve"}
    reviewed = world["staff"].post(
        f"/dossiers/{world['dossier_id']}/documents/{world['document']}/review", review
    )
    assert reviewed.body["dossier_status"] == "completed"
    # The tick queues this when the account's retention has passed since the dossier was completed.
    wiring.container().communications_queue.send(
        ErasureRequest(world["account_id"], world["dossier_id"]).to_message()
    )
    announced = _waiting(wiring.container(), wiring.container().webhooks_queue)
    return {**world, "office": office, "installment": _paths(book)[1], "announced": announced}


def _deliver_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    from chalicelib.adapters.ses import SesMailer

    settings = container.settings
    # The deployed mailer: the local stage's SES simulator would also play SES's own event publishing.
    mailer = SesMailer(container.client("sesv2"), settings.sender_address(), settings.ses_configuration_set)
    container.__dict__["mailer"] = mailer
    _pump(container, "communications", found)


def _worker_worked(world: dict[str, Any], container: Container) -> bool:
    from chalicelib.local.outbox import sent_messages

    kinds = {m["kind"] for m in sent_messages(REGION)}
    notice = world["office"].ok("GET", world["installment"])["formal_notice"] or {}
    erased = world["staff"].get(f"/dossiers/{world['dossier_id']}").status == 404
    prepared = notice.get("status") == "to_send" and bool(notice.get("sha256"))
    told = _waiting(container, container.webhooks_queue) > world["announced"]  # formal_notice.prepared
    return "account_welcome" in kinds and prepared and erased and told


def _bounce_setup(platform: Api, found: Identities) -> dict[str, Any]:
    from chalicelib.local.ses_simulator import BOUNCE

    account_id = _open_quietly(platform, sender=BOUNCE)
    _pump(wiring.container(), "communications", found)
    return {"account_id": account_id, "address": BOUNCE}


def _bounce_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    _pump(container, "ses_events", found)


def _bounce_worked(world: dict[str, Any], container: Container) -> bool:
    suppressed = container.suppressions.suppressed(world["account_id"], [world["address"]])
    return suppressed == {world["address"]} and _waiting(container, container.ses_events_queue) == 0


def _bulk_setup(platform: Api, found: Identities) -> dict[str, Any]:
    staff, _ = open_account(platform)
    b = staff.post("/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"}).body["id"]
    c = staff.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}).body["id"]
    k = staff.post("/contracts", {"client_id": c, "reference": "K-1", "apporteur_id": b}).body["id"]
    job = staff.post("/contracts/bulk-updates", {"ids": [k], "set": {"communication_rule": "apporteur"}}).body
    mailing = {
        "name": "Offre",
        "subject": "Du nouveau",
        "body": "Bonjour {{ recipient.name }},\n\nNotre offre est là.",
        "audience": {"entity": "contracts"},
    }
    mailing_id = staff.post("/mailings", mailing).body["id"]
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    announced = _waiting(wiring.container(), wiring.container().webhooks_queue)
    return {"staff": staff, "job_id": job["job_id"], "mailing_id": mailing_id, "announced": announced}


def _bulk_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    _pump(container, "bulk", found)


def _bulk_worked(world: dict[str, Any], container: Container) -> bool:
    staff = world["staff"]
    job = staff.get(f"/jobs/{world['job_id']}").body
    mailing = staff.get(f"/mailings/{world['mailing_id']}").body
    return (
        job["succeeded"] == 1
        and mailing["total"] == 1
        and _waiting(container, container.communications_queue) == 1
        and _waiting(container, container.webhooks_queue) > world["announced"]  # job.finished
    )


def _dossier(platform: Api) -> dict[str, Any]:
    """A platinum account with a one-document procedure and a dossier; its recipient's portal secret."""
    account_id = _open_quietly(platform, plan="platinum")
    staff = platform.as_(token("manager", account_id))
    procedure = staff.post("/procedures", {"name": "Demande de location"}).body["id"]
    document = staff.post(f"/procedures/{procedure}/documents", {"label": "Pièce d'identité"}).body["id"]
    body = {
        "procedure_id": procedure,
        "recipient": {"name": "Léa Martin", "email": "lea@exemple.fr"},
        "reference": "LOC-1",
    }
    dossier = staff.post("/dossiers", body).body
    secret = dossier["portal_link"].split("#token=")[1]
    return {
        "account_id": account_id,
        "staff": staff,
        "dossier_id": dossier["id"],
        "document": document,
        "secret": secret,
        "portal": platform.as_(secret),
        "admin": platform.as_(token("admin", account_id)),
    }


def _portal_setup(platform: Api, found: Identities) -> dict[str, Any]:
    return {**_dossier(platform), "answers": []}


def _portal_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    from chalicelib.api.authorizers import portal_authorizer

    event = {
        "type": "TOKEN",
        "authorizationToken": f"Bearer {world['secret']}",
        "methodArn": "arn:aws:execute-api:x",
    }
    world["answers"].append(portal_authorizer(event, {}))


def _portal_worked(world: dict[str, Any], container: Container) -> bool:
    return [a["context"]["dossier_id"] for a in world["answers"]] == [world["dossier_id"]]


def _staff_setup(platform: Api, found: Identities) -> dict[str, Any]:
    return {"answers": []}


def _staff_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    from chalicelib.api.authorizers import staff_authorizer

    event = {
        "type": "TOKEN",
        "authorizationToken": f"Bearer {token('admin', 'A1')}",
        "methodArn": "arn:aws:execute-api:x",
    }
    world["answers"].append(staff_authorizer(event, {}))


def _staff_worked(world: dict[str, Any], container: Container) -> bool:
    return [a["context"]["role"] for a in world["answers"]] == ["admin"]


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _uploaded(world: dict[str, Any], found: Identities) -> tuple[str, str]:
    """A file sent to the presigned form the API answered (by the browser: its PutObject is authorized
    by the API's signature on the form, recorded here as the API's)."""
    started = (
        world["portal"]
        .post(
            f"/portal/documents/{world['document']}/uploads",
            {"filename": "id.pdf", "content_type": "application/pdf", "size": len(PDF)},
        )
        .body
    )
    assert "fields" in started, (started, found.denied)
    bucket, key = found.services.settings.documents_bucket, started["fields"]["key"]
    with outside(found) as acting:
        s3 = wiring.container().client("s3")
        s3.put_object(Bucket=bucket, Key=key, Body=PDF, ContentType="application/pdf")
    if acting:
        found.calls.append(Call("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"))
    return started["upload_id"], key


def _upload_setup(platform: Api, found: Identities) -> dict[str, Any]:
    world = _dossier(platform)
    _, key = _uploaded(world, found)
    return {**world, "key": key, "answers": []}


def _upload_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    from chalicelib.handlers import upload_events

    detail = {
        "bucket": {"name": container.settings.documents_bucket},
        "object": {"key": world["key"], "size": len(PDF)},
    }
    world["answers"].append(upload_events.handle(detail))


def _upload_worked(world: dict[str, Any], container: Container) -> bool:
    return world["answers"] == ["accepted"]


def _api_setup(platform: Api, found: Identities) -> dict[str, Any]:
    world = _dossier(platform)
    assert world["admin"].patch("/account/settings", {"partner_communications_enabled": True}).status == 200
    return {**world, "statuses": []}


def _api_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    staff, statuses = world["staff"], world["statuses"]
    upload_id, _ = _uploaded(world, found)
    statuses.append(
        world["portal"].post(f"/portal/documents/{world['document']}/uploads/{upload_id}/complete").status
    )
    created = staff.post(
        "/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}, headers={"Idempotency-Key": "k-1"}
    )
    statuses.append(created.status)
    c = created.body["id"] if created.status == 201 else "none"
    b = staff.post("/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"}).body.get("id", "none")
    contract = staff.post("/contracts", {"client_id": c, "reference": "K-1", "apporteur_id": b})
    statuses.append(contract.status)
    k = contract.body["id"] if contract.status == 201 else "none"
    statuses.append(staff.post(f"/clients/{c}/emails", {"subject": "Bonjour", "body": "Un mot."}).status)
    statuses.append(
        staff.post("/contracts/bulk-updates", {"ids": [k], "set": {"communication_rule": "apporteur"}}).status
    )
    draft = staff.post(
        "/mailings", {"name": "Offre", "subject": "S", "body": "Bonjour", "audience": {"entity": "clients"}}
    )
    statuses.append(draft.status)
    mailing = draft.body["id"] if draft.status == 201 else "none"
    statuses.append(staff.call("DELETE", f"/mailings/{mailing}").status)
    statuses.append(world["admin"].call("DELETE", f"/dossiers/{world['dossier_id']}").status)


def _api_worked(world: dict[str, Any], container: Container) -> bool:
    return world["statuses"] == [200, 201, 201, 202, 202, 201, 204, 204]


@contextmanager
def _receiving(status: int) -> Iterator[tuple[str, list[bytes]]]:
    """A webhook receiver on loopback answering `status`: its URL, and the bodies it received."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/relais", received
    finally:
        server.shutdown()
        server.server_close()


def _webhook_worker_setup(platform: Api, found: Identities) -> dict[str, Any]:
    """Two endpoints hear a dossier opened: one takes it, the other answers 410 Gone (disabled, the
    account told by email)."""
    world = _dossier(platform)
    stack = ExitStack()
    urls = {status: stack.enter_context(_receiving(status)) for status in (200, 410)}
    endpoints = {
        status: world["admin"].post("/webhooks", {"url": url, "events": ["*"]}).body["id"]
        for status, (url, _) in urls.items()
    }
    emails = _waiting(wiring.container(), wiring.container().communications_queue)
    received = {status: bodies for status, (_, bodies) in urls.items()}
    return {**world, "stack": stack, "endpoints": endpoints, "received": received, "emails": emails}


def _webhook_worker_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    while _pump(container, "webhooks", found):
        pass


def _webhook_worker_worked(world: dict[str, Any], container: Container) -> bool:
    with world["stack"]:
        gone = world["admin"].get(f"/webhooks/{world['endpoints'][410]}").body
        return (
            len(world["received"][200]) >= 1
            and len(world["received"][410]) == 1
            and gone["enabled"] is False
            and _waiting(container, container.communications_queue) == world["emails"] + 1
        )


def _webhook_tick_setup(platform: Api, found: Identities) -> dict[str, Any]:
    _dossier(platform)
    services = wiring.container()
    services.client("sqs").purge_queue(QueueUrl=services.webhooks_queue.url)  # the event's message is lost
    return {"at": services.now() + timedelta(minutes=6), "queued": []}


def _webhook_tick_act(world: dict[str, Any], container: Container, found: Identities) -> None:
    from chalicelib.handlers import webhook_tick

    world["queued"].append(webhook_tick.run(world["at"]))


def _webhook_tick_worked(world: dict[str, Any], container: Container) -> bool:
    return world["queued"] == [1] and _waiting(container, container.webhooks_queue) == 1


WORKS = {
    "api_handler": Work(_api_setup, _api_act, _api_worked),
    "staff_authorizer": Work(_staff_setup, _staff_act, _staff_worked),
    "portal_authorizer": Work(_portal_setup, _portal_act, _portal_worked),
    "communications_worker": Work(_worker_setup, _deliver_act, _worker_worked),
    "dunning_tick": Work(_tick_setup, _tick_act, _tick_worked),
    "ses_events": Work(_bounce_setup, _bounce_act, _bounce_worked),
    "bulk_worker": Work(_bulk_setup, _bulk_act, _bulk_worked),
    "upload_events": Work(_upload_setup, _upload_act, _upload_worked),
    "webhook_worker": Work(_webhook_worker_setup, _webhook_worker_act, _webhook_worker_worked),
    "webhook_tick": Work(_webhook_tick_setup, _webhook_tick_act, _webhook_tick_worked),
}


def _run(function: str, policy: dict[str, Any], platform: Api, found: Identities) -> tuple[bool, list[Call]]:
    work = WORKS[function]
    world = work.setup(platform, found)
    crashed = None
    with found.acting_as(function, policy) as container:
        try:
            work.act(world, container, found)
        except (ClientError, PynamoDBException) as exc:  # the function or its event source mapping failed
            crashed = exc
    calls = [*found.calls, *runtime_log_calls(function), *runtime_secret_calls(function)]
    return crashed is None and work.worked(world, wiring.container()), calls


def test_every_function_of_the_app_has_its_real_work_here() -> None:
    assert set(WORKS) == set(POLICIES)


@pytest.mark.parametrize("function", sorted(POLICIES))
def test_a_function_does_its_real_work_with_only_its_own_policy(
    function: str, platform: Api, identities: Identities
) -> None:
    policy = POLICIES[function]
    worked, calls = _run(function, policy, platform, identities)
    assert identities.denied == []
    assert worked, (function, calls)
    assert unallowed(policy, calls) == [], function
    # Statically, each statement is needed: without it, some call of this very work is not allowed.
    needless = [s["Sid"] for s in policy["Statement"] if not unallowed(without(policy, s["Sid"]), calls)]
    assert needless == [], f"{function} made no call that needs {needless}"


MOTO_ENFORCED = {"dynamodb", "sqs", "s3", "ses"}


def _enforced_by_moto(statement: dict[str, Any]) -> bool:
    """Whether moto checks every action of the statement (see the module's docstring)."""
    services = {action.split(":")[0] for action in _as_list(statement["Action"])}
    if services == {"ses"}:
        # moto checks the sending identity only; a statement on the configuration set is proven statically.
        return any(":identity/" in resource for resource in _as_list(statement["Resource"]))
    return services <= MOTO_ENFORCED and "Condition" not in statement


ENFORCED_STATEMENTS = [
    (function, s["Sid"])
    for function, policy in sorted(POLICIES.items())
    for s in policy["Statement"]
    if _enforced_by_moto(s)
]
"""The statements whose removal moto can show refused; the others (logs, SSM, conditions, SES's
configuration set) are shown needed statically by the test above, from the calls of the same work."""


@pytest.mark.parametrize(
    ("function", "sid"), ENFORCED_STATEMENTS, ids=[f"{f}-{s}" for f, s in ENFORCED_STATEMENTS]
)
def test_removing_any_statement_of_a_policy_breaks_its_functions_work(
    function: str, sid: str, platform: Api, identities: Identities
) -> None:
    reduced = without(POLICIES[function], sid)
    worked, calls = _run(function, reduced, platform, identities)
    assert identities.denied, f"moto refused nothing to {function} without {sid}"
    assert not worked
    assert unallowed(reduced, calls), f"{function} made no call that needs {sid}"
