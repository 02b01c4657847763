"""The webhook transport against real receivers on 127.0.0.1 (issue 16, "safe to point anywhere"): what
each kind of receiver (answering, redirecting, hanging, resetting, absent) becomes for the worker, and how a
name that resolves into our own network is refused before any connection, in the deployed stage's rules
(a fake resolver plays the DNS)."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib.adapters.webhook_http import (
    MAX_BODY_BYTES,
    PinnedHttpTransport,
    PostOutcome,
)
from chalicelib.domain.errors import FieldIssue, InvalidInput

TIMEOUT = 0.5
SLACK = 1.0  # this machine is shared: the bound proves the deadline holds, not that it is tight
BODY = b'{"type":"webhook.test","timestamp":"2027-03-12T07:00:00Z","data":{}}'
HEADERS = {
    "webhook-id": "evt_01JQ0000000000000000000001",
    "webhook-timestamp": "1805000000",
    "webhook-signature": "v1,c2lnbmF0dXJl",
}

Behaviour = Callable[[socket.socket], None]


@dataclass
class Receiver:
    """A TCP receiver on 127.0.0.1 that applies `behaviour` to each connection and keeps what it read."""

    behaviour: Behaviour
    listener: socket.socket = field(init=False)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with connection:
                connection.settimeout(5)
                self.behaviour(connection)

    def read_request(self, connection: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(rest) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            rest += chunk
        self.requests.append(head + b"\r\n\r\n" + rest)
        return data

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def receivers() -> Iterator[Callable[[Behaviour], Receiver]]:
    started: list[Receiver] = []

    def start(behaviour: Behaviour) -> Receiver:
        receiver = Receiver(behaviour)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def answering(status: int, reason: str = "OK", extra: bytes = b"") -> Callable[[Receiver], Behaviour]:
    def behaviour_of(receiver: Receiver) -> Behaviour:
        def behaviour(connection: socket.socket) -> None:
            receiver.read_request(connection)
            connection.sendall(
                f"HTTP/1.1 {status} {reason}\r\ncontent-length: 2\r\n".encode() + extra + b"\r\nok"
            )

        return behaviour

    return behaviour_of


def receiver_that(
    make: Callable[[Receiver], Behaviour], receivers: Callable[[Behaviour], Receiver]
) -> Receiver:
    holder: list[Receiver] = []
    receiver = receivers(lambda connection: make(holder[0])(connection))
    holder.append(receiver)
    return receiver


def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "cert.pem", directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


def local(
    timeout_s: float = TIMEOUT, resolver: Callable[..., list[tuple[Any, ...]]] | None = None
) -> PinnedHttpTransport:
    if resolver is None:
        return PinnedHttpTransport(local_stage=True, timeout_s=timeout_s)
    return PinnedHttpTransport(local_stage=True, timeout_s=timeout_s, resolver=resolver)


def fake_resolver(*addresses: str) -> tuple[Callable[..., list[tuple[Any, ...]]], list[str]]:
    """A resolver answering `addresses` for any name, and the names it was asked for."""
    asked: list[str] = []

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        results: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                results.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                results.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return results

    return resolve, asked


def test_a_2xx_answer_is_a_success_and_the_receiver_gets_the_signed_body_with_our_headers(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(204, "No Content"), receivers)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/hooks?source=relais", HEADERS, BODY)

    assert outcome.status == 204
    assert outcome.error is None
    assert outcome.succeeded
    assert 0 <= outcome.duration_ms < 5000
    [request] = receiver.requests
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hooks?source=relais HTTP/1.1"
    fields = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    assert fields["host"] == f"127.0.0.1:{receiver.port}"
    assert fields["content-type"] == "application/json"
    assert fields["user-agent"] == "Relais-Webhooks/1"
    assert fields["content-length"] == str(len(BODY))
    assert fields["webhook-id"] == HEADERS["webhook-id"]
    assert fields["webhook-signature"] == HEADERS["webhook-signature"]
    assert body == BODY


def test_the_host_header_is_the_name_while_the_socket_goes_to_the_address_resolved_once(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(200), receivers)
    resolver, asked = fake_resolver("127.0.0.1")

    outcome = local(resolver=resolver).post(f"http://localhost:{receiver.port}/", HEADERS, BODY)

    assert outcome == PostOutcome(status=200, duration_ms=outcome.duration_ms, error=None)
    assert asked == ["localhost"]
    assert f"host: localhost:{receiver.port}".encode() in receiver.requests[0].lower()


def test_a_caller_cannot_override_the_content_type_or_the_host(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(200), receivers)

    local().post(
        f"http://127.0.0.1:{receiver.port}/",
        {"Content-Type": "text/plain", "Host": "evil.example", **HEADERS},
        BODY,
    )

    head = receiver.requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.count(b"content-type:") == 1
    assert b"content-type: application/json" in head
    assert head.count(b"host:") == 1
    assert b"evil.example" not in head


def test_interim_answers_are_skipped_for_the_final_status(receivers: Callable[[Behaviour], Receiver]) -> None:
    def early_hints_then_created(connection: socket.socket) -> None:
        receiver.read_request(connection)
        connection.sendall(
            b"HTTP/1.1 102 Processing\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"
        )

    receiver = receivers(early_hints_then_created)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error, outcome.succeeded) == (201, None, True)


def test_a_500_answer_is_reported_with_its_status_and_no_transport_error(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(500, "Internal Server Error"), receivers)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error, outcome.succeeded) == (500, None, False)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_its_target_is_never_contacted(
    status: int, receivers: Callable[[Behaviour], Receiver]
) -> None:
    target = receiver_that(answering(200), receivers)
    location = f"location: http://127.0.0.1:{target.port}/stolen\r\n".encode()
    redirecting = receiver_that(answering(status, "Redirect", location), receivers)

    outcome = local().post(f"http://127.0.0.1:{redirecting.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (status, "redirect not followed")
    assert not outcome.succeeded
    time.sleep(0.1)
    assert target.connections == 0


def test_a_receiver_that_accepts_and_never_answers_times_out_after_the_timeout(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    release = threading.Event()

    def hang(connection: socket.socket) -> None:
        release.wait(5)

    receiver = receivers(hang)
    started = time.monotonic()

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    elapsed = time.monotonic() - started
    release.set()
    assert (outcome.status, outcome.error) == (None, "timeout")
    assert TIMEOUT <= elapsed < TIMEOUT + SLACK
    assert TIMEOUT * 1000 <= outcome.duration_ms < (TIMEOUT + SLACK) * 1000


def test_a_receiver_that_drips_its_answer_cannot_stretch_the_timeout(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    def drip(connection: socket.socket) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\n" + b"x-slow: " + b"a" * 100:
                connection.sendall(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            return

    receiver = receivers(drip)
    started = time.monotonic()

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "timeout")
    assert time.monotonic() - started < TIMEOUT + SLACK


def test_a_receiver_that_resets_the_connection_is_reported_as_a_reset(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    def reset(connection: socket.socket) -> None:
        connection.recv(10)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    receiver = receivers(reset)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "connection reset")


def test_a_receiver_that_closes_without_answering_is_reported_as_a_reset(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receivers(lambda connection: connection.recv(10))

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "connection reset")


def test_an_answer_that_is_not_http_is_an_invalid_answer(receivers: Callable[[Behaviour], Receiver]) -> None:
    def garbage(connection: socket.socket) -> None:
        connection.recv(65536)
        connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    receiver = receivers(garbage)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "invalid answer")


def test_an_answer_whose_headers_exceed_64_kb_is_not_read_further(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    def endless_headers(connection: socket.socket) -> None:
        connection.recv(65536)
        try:
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            for index in range(2000):
                connection.sendall(f"x-filler-{index}: {'a' * 60}\r\n".encode())
        except OSError:
            return

    receiver = receivers(endless_headers)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "invalid answer")


def test_nothing_listening_is_a_refused_connection() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    outcome = local().post(f"http://127.0.0.1:{port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "connection refused")


def test_a_body_over_256_kb_is_refused_before_connecting(receivers: Callable[[Behaviour], Receiver]) -> None:
    receiver = receiver_that(answering(200), receivers)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, b"x" * (MAX_BODY_BYTES + 1))

    assert (outcome.status, outcome.error) == (None, "body too large")
    time.sleep(0.1)
    assert receiver.connections == 0


def test_a_body_of_exactly_256_kb_is_sent(receivers: Callable[[Behaviour], Receiver]) -> None:
    receiver = receiver_that(answering(200), receivers)

    outcome = local().post(f"http://127.0.0.1:{receiver.port}/", HEADERS, b"x" * MAX_BODY_BYTES)

    assert (outcome.status, outcome.error) == (200, None)
    assert receiver.requests[0].endswith(b"x" * MAX_BODY_BYTES)


def test_https_to_a_receiver_that_does_not_speak_tls_is_a_tls_error(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    def plain_http(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    receiver = receivers(plain_http)

    outcome = local().post(f"https://127.0.0.1:{receiver.port}/", HEADERS, BODY)

    assert outcome.status is None
    assert outcome.error is not None
    assert outcome.error.startswith("tls: ")


def test_a_certificate_that_is_not_trusted_for_the_name_is_a_tls_error_and_nothing_is_sent(
    receivers: Callable[[Behaviour], Receiver], tmp_path: Path
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed_certificate(tmp_path, "localhost"))
    received: list[bytes] = []

    def tls_receiver(connection: socket.socket) -> None:
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                received.append(tls.recv(65536))
        except (ssl.SSLError, OSError):
            return

    receiver = receivers(tls_receiver)

    outcome = local().post(f"https://localhost:{receiver.port}/", HEADERS, BODY)

    assert outcome.status is None
    assert outcome.error is not None
    assert outcome.error.startswith("tls: ")
    assert "certificate" in outcome.error
    assert received == []


def test_a_public_looking_name_that_resolves_into_our_network_is_refused_without_connecting(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(200), receivers)
    resolver, asked = fake_resolver("127.0.0.1")
    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

    outcome = deployed.post(f"https://hooks.example.com:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "address refused: 127.0.0.1")
    assert asked == ["hooks.example.com"]
    time.sleep(0.1)
    assert receiver.connections == 0


@pytest.mark.parametrize(
    "addresses",
    [
        ("93.184.216.34", "127.0.0.1"),
        ("127.0.0.1", "93.184.216.34"),
        ("93.184.216.34", "169.254.169.254"),
        ("2606:2800:220:1:248:1893:25c8:1946", "fd00:ec2::254"),
        ("93.184.216.34", "::ffff:10.0.0.5"),
    ],
)
def test_a_name_with_one_public_and_one_private_address_is_refused(
    addresses: tuple[str, str], receivers: Callable[[Behaviour], Receiver]
) -> None:
    receiver = receiver_that(answering(200), receivers)
    resolver, _ = fake_resolver(*addresses)
    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

    outcome = deployed.post(f"https://hooks.example.com:{receiver.port}/", HEADERS, BODY)

    private = next(address for address in addresses if not address.startswith(("93.", "2606:")))
    assert (outcome.status, outcome.error) == (None, f"address refused: {private}")
    time.sleep(0.1)
    assert receiver.connections == 0


def test_in_the_local_stage_loopback_is_allowed_but_a_private_address_is_still_refused(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(200), receivers)
    resolver, _ = fake_resolver("127.0.0.1", "10.0.0.5")

    outcome = local(resolver=resolver).post(f"http://localhost:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "address refused: 10.0.0.5")
    assert receiver.connections == 0


def test_a_name_that_does_not_resolve_is_reported_as_such() -> None:
    def unknown(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=unknown)

    outcome = deployed.post("https://hooks.example.invalid/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "name not resolved")


def test_a_name_that_resolves_to_nothing_is_reported_as_not_resolved() -> None:
    resolver, _ = fake_resolver()
    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

    outcome = deployed.post("https://hooks.example.com/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (None, "name not resolved")


def test_the_deployed_stage_refuses_plain_http_without_resolving_or_connecting(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(200), receivers)
    resolver, asked = fake_resolver("93.184.216.34")
    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

    for url in (f"http://127.0.0.1:{receiver.port}/", "http://hooks.example.com/"):
        outcome = deployed.post(url, HEADERS, BODY)

        assert (outcome.status, outcome.error) == (None, "url refused: must be an https:// URL")
    assert asked == []
    assert receiver.connections == 0


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("https://169.254.169.254/latest/meta-data/", "url refused: points to an address that cannot"),
        ("https://0x7f000001/", "url refused: has a numeric host that is not a dotted-decimal"),
        ("https://user:pw@hooks.example.com/", "url refused: must not contain a user name or password"),
        ("not a url", "url refused: "),
    ],
)
def test_a_url_the_rules_refuse_is_refused_at_delivery_too(url: str, error: str) -> None:
    resolver, asked = fake_resolver("93.184.216.34")
    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

    outcome = deployed.post(url, HEADERS, BODY)

    assert outcome.status is None
    assert outcome.error is not None
    assert outcome.error.startswith(error)
    assert asked == []


def test_a_name_whose_resolution_hangs_times_out_within_the_timeout() -> None:
    release = threading.Event()

    def hanging(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        release.wait(5)
        return []

    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=hanging)
    started = time.monotonic()

    outcome = deployed.post("https://hooks.example.com/", HEADERS, BODY)

    release.set()
    assert (outcome.status, outcome.error) == (None, "timeout")
    assert time.monotonic() - started < TIMEOUT + SLACK


def test_when_the_first_address_refuses_the_next_checked_address_is_tried(
    receivers: Callable[[Behaviour], Receiver],
) -> None:
    receiver = receiver_that(answering(200), receivers)
    resolver, _ = fake_resolver("127.0.0.2", "127.0.0.1")

    outcome = local(resolver=resolver).post(f"http://localhost:{receiver.port}/", HEADERS, BODY)

    assert (outcome.status, outcome.error) == (200, None)
    assert receiver.connections == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-id": "evt_1\r\nx-injected: 1"},
        {"webhook-id\r\nx-injected": "1"},
        {"webhook id": "1"},
        {"webhook-id": "évènement"},
    ],
)
def test_a_header_the_caller_built_wrong_raises_before_any_connection(
    headers: dict[str, str], receivers: Callable[[Behaviour], Receiver]
) -> None:
    receiver = receiver_that(answering(200), receivers)

    with pytest.raises(ValueError, match="cannot be sent"):
        local().post(f"http://127.0.0.1:{receiver.port}/", headers, BODY)

    time.sleep(0.1)
    assert receiver.connections == 0


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (("10.0.0.5",), "10.0.0.5"),
        (("93.184.216.34", "169.254.169.254"), "169.254.169.254"),
        (("fd00:ec2::254",), "fd00:ec2::254"),
    ],
)
def test_at_creation_a_name_resolving_into_our_network_is_refused_naming_url(
    addresses: tuple[str, ...], refused: str
) -> None:
    resolver, asked = fake_resolver(*addresses)
    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

    with pytest.raises(InvalidInput) as invalid:
        deployed.check_url_resolves("https://Hooks.Example.com/relais")

    assert invalid.value.details == [
        FieldIssue("url", f"resolves to an address that cannot receive webhooks ({refused})")
    ]
    assert asked == ["hooks.example.com"]


def test_at_creation_a_public_name_or_one_not_resolving_yet_is_accepted_normalized() -> None:
    public, _ = fake_resolver("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    not_yet, _ = fake_resolver()

    for resolver in (public, not_yet):
        deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

        assert deployed.check_url_resolves("https://Hooks.Example.com/relais") == (
            "https://hooks.example.com/relais"
        )


def test_at_creation_the_url_rules_apply_before_any_resolution() -> None:
    resolver, asked = fake_resolver("93.184.216.34")
    deployed = PinnedHttpTransport(local_stage=False, timeout_s=TIMEOUT, resolver=resolver)

    with pytest.raises(InvalidInput) as invalid:
        deployed.check_url_resolves("http://hooks.example.com/")

    assert invalid.value.details == [FieldIssue("url", "must be an https:// URL")]
    assert asked == []
