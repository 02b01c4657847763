"""The HTTP POST of one webhook delivery, safe to point at any URL a broker typed.

`PinnedHttpTransport` checks the URL again (`check_url`: the rules may have tightened since the endpoint was
saved), resolves its host once, refuses the delivery when ANY resolved address is not allowed, and connects
the socket itself to an address it checked: a name that resolves to a public address when checked and to
169.254.169.254 when connected (DNS rebinding) never gets the second look. For https the socket is wrapped
with the default TLS context and `server_hostname=<host>`, so the certificate is verified against the name,
not the address; `Host` is the name.

Redirects are never followed (a 3xx is reported with its status), the whole delivery has one deadline
(name resolution, connect, TLS, send, then the status line and headers: at most 64 KB of the answer is read,
the body never), so neither a slow DNS nor a receiver that drips bytes can hold a worker longer, and request
bodies above 256 KB are refused before anything is sent. A receiver's fault never raises: it becomes a
`PostOutcome` the worker records and retries; only a header the caller built wrong raises (ValueError),
before any connection. Only the standard library is used.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.webhook_urls import address_allowed, check_url
from chalicelib.domain.webhooks import MAX_BODY_BYTES
from chalicelib.observability import logger

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "Relais-Webhooks/1"

# Headers the transport writes itself: the caller's copies would contradict the request actually sent.
_OURS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
_SEND_CHUNK = 16 * 1024

Resolver = Callable[..., list[tuple[Any, ...]]]


@dataclass(frozen=True)
class PostOutcome:
    """What became of one POST.

    `error` is None when the receiver answered (any status; 2xx is success for the caller), else one of
    "timeout", "connection refused", "connection reset", "connection failed: <reason>", "redirect not
    followed" (with the 3xx `status` kept), "address refused: <ip>", "url refused: <reason>", "name not
    resolved", "tls: <reason>", "invalid answer", "body too large".
    """

    status: int | None
    duration_ms: int
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class WebhookTransport(Protocol):
    def post(self, url: str, headers: dict[str, str], body: bytes) -> PostOutcome: ...


class _Refused(Exception):
    """A delivery stopped before or during the exchange; `error` is the PostOutcome's error."""

    def __init__(self, error: str, status: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


class PinnedHttpTransport:
    def __init__(
        self,
        local_stage: bool,
        timeout_s: float = 10.0,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self._local_stage = local_stage
        self._timeout_s = timeout_s
        self._resolve = resolver

    def post(self, url: str, headers: dict[str, str], body: bytes) -> PostOutcome:
        _check_headers(headers)
        started = time.monotonic()
        deadline = started + self._timeout_s
        host = ""
        status: int | None = None
        error: str | None = None
        try:
            if len(body) > MAX_BODY_BYTES:
                raise _Refused("body too large")
            target = _Target.of(url, self._local_stage)
            host = target.host
            addresses = self._addresses(target, deadline)
            status = self._exchange(target, addresses, headers, body, deadline)
            if 300 <= status < 400:
                error = "redirect not followed"
        except _Refused as refused:
            status, error = refused.status, refused.error
        duration_ms = int((time.monotonic() - started) * 1000)
        logger.info(
            "webhook post",
            extra={"host": host, "status": status, "error": error, "duration_ms": duration_ms},
        )
        return PostOutcome(status=status, duration_ms=duration_ms, error=error)

    def check_url_resolves(self, url: str) -> str:
        """`check_url`, plus the addresses the host resolves to now: for an endpoint's creation or change,
        where API.md wants a name resolving into our network refused with a 400 naming `url`, as a
        literal private address is. Raises InvalidInput on field "url"; answers the normalized URL.

        A name that does not resolve (yet), or a DNS too slow to answer within the timeout, is let
        through: the URL may be published later, and each delivery checks again anyway.
        """
        normalized = check_url(url, self._local_stage)
        try:
            self._addresses(_Target.of(normalized, self._local_stage), time.monotonic() + self._timeout_s)
        except _AddressRefused as refused:
            issue = f"resolves to an address that cannot receive webhooks ({refused.address})"
            raise InvalidInput("The webhook URL cannot be used.", [FieldIssue("url", issue)]) from refused
        except _Refused:
            pass  # not resolving (yet) or too slow to: each delivery resolves and checks again
        return normalized

    def _addresses(
        self, target: _Target, deadline: float
    ) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
        """Every address the host resolves to, each allowed; the delivery is refused if one is not."""
        if target.literal is not None:
            family = socket.AF_INET6 if target.literal.version == 6 else socket.AF_INET
            return [(family, (str(target.literal), target.port))]
        results = _resolve_within(self._resolve, target, deadline)
        addresses = [
            (family, sockaddr)
            for family, _type, _proto, _name, sockaddr in results
            if family in (socket.AF_INET, socket.AF_INET6)
        ]
        if not addresses:
            raise _Refused("name not resolved")
        for _family, sockaddr in addresses:
            if not address_allowed(sockaddr[0], self._local_stage):
                raise _AddressRefused(sockaddr[0])
        return addresses

    def _exchange(
        self,
        target: _Target,
        addresses: list[tuple[socket.AddressFamily, tuple[Any, ...]]],
        headers: dict[str, str],
        body: bytes,
        deadline: float,
    ) -> int:
        sock = _connect(addresses, deadline)
        try:
            if target.tls:
                sock = _wrap_tls(sock, target.host, deadline)
            connection = _PinnedConnection(target, sock, deadline)
            _remaining(deadline, sock)
            connection.putrequest("POST", target.path_and_query, skip_accept_encoding=True)
            merged = {name.lower(): value for name, value in headers.items() if name.lower() not in _OURS}
            merged.update(
                {
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    "content-length": str(len(body)),
                    "connection": "close",
                }
            )
            for name, value in merged.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            return _read_status(sock, deadline)
        except TimeoutError as exc:
            raise _Refused("timeout") from exc
        except ssl.SSLError as exc:
            raise _Refused(f"tls: {exc.reason or exc}") from exc
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
            raise _Refused("connection reset") from exc
        except http.client.HTTPException as exc:
            raise _Refused("invalid answer") from exc
        except OSError as exc:
            raise _Refused(f"connection failed: {exc.strerror or exc}") from exc
        finally:
            sock.close()


class _AddressRefused(_Refused):
    def __init__(self, address: str) -> None:
        super().__init__(f"address refused: {address}")
        self.address = address


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    tls: bool
    path_and_query: str
    literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None

    @classmethod
    def of(cls, url: str, local_stage: bool) -> _Target:
        try:
            normalized = check_url(url, local_stage)
        except InvalidInput as exc:
            issue = exc.details[0].issue if exc.details else exc.message
            raise _Refused(f"url refused: {issue}") from exc
        parts = urllib.parse.urlsplit(normalized)
        host = parts.hostname or ""
        try:
            literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        tls = parts.scheme == "https"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return cls(host, parts.port or (443 if tls else 80), tls, path, literal)


def _check_headers(headers: dict[str, str]) -> None:
    """Refuse a header the caller built wrong (a line break would split the request), before connecting."""
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or not _HEADER_VALUE.match(value):
            raise ValueError(f"The webhook header {name!r} cannot be sent as it is.")


def _resolve_within(resolve: Resolver, target: _Target, deadline: float) -> list[tuple[Any, ...]]:
    """The resolver's answer, waited for until the deadline only: getaddrinfo has no timeout of its own.

    A resolution still running at the deadline is left to finish in its daemon thread, its answer unused.
    """
    answers: list[list[tuple[Any, ...]]] = []
    failures: list[Exception] = []

    def run() -> None:
        try:
            answers.append(resolve(target.host, target.port, type=socket.SOCK_STREAM))
        except Exception as exc:  # handed to the caller's thread below, which decides
            failures.append(exc)

    thread = threading.Thread(target=run, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if failures:
        if isinstance(failures[0], OSError | UnicodeError):
            raise _Refused("name not resolved") from failures[0]
        raise failures[0]
    if not answers:
        raise _Refused("timeout")
    return answers[0]


def _remaining(deadline: float, sock: socket.socket) -> None:
    """Give the next socket operation what is left of the deadline, or time out now."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


def _connect(addresses: list[tuple[socket.AddressFamily, tuple[Any, ...]]], deadline: float) -> socket.socket:
    """A socket connected to the first address that accepts; every address was checked beforehand."""
    failure: _Refused | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            _remaining(deadline, sock)
            sock.connect(sockaddr)
            return sock
        except TimeoutError as exc:
            sock.close()
            raise _Refused("timeout") from exc
        except ConnectionRefusedError:
            sock.close()
            failure = _Refused("connection refused")
        except OSError as exc:
            sock.close()
            failure = _Refused(f"connection failed: {exc.strerror or exc}")
    raise failure or _Refused("name not resolved")


def _wrap_tls(sock: socket.socket, host: str, deadline: float) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    _remaining(deadline, sock)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise _Refused(f"tls: {exc.verify_message or exc.reason}") from exc
    except ssl.SSLError as exc:
        sock.close()
        raise _Refused(f"tls: {exc.reason or exc}") from exc
    except TimeoutError as exc:
        sock.close()
        raise _Refused("timeout") from exc
    except OSError as exc:
        sock.close()
        raise _Refused("connection reset") from exc


class _PinnedConnection(http.client.HTTPConnection):
    """http.client's request writer (Host, header checks) over a socket we connected ourselves."""

    def __init__(self, target: _Target, sock: socket.socket, deadline: float) -> None:
        super().__init__(target.host, target.port)
        self.default_port = 443 if target.tls else 80
        self.sock = sock
        self._deadline = deadline

    def connect(self) -> None:
        raise RuntimeError("a pinned connection never opens a socket itself")

    def send(self, data: Any) -> None:
        """Send in chunks, each given what is left of the deadline: a TLS socket's `sendall` gives every
        partial write the whole timeout, so a receiver reading slowly could otherwise hold us longer."""
        view = memoryview(data)
        for start in range(0, len(view), _SEND_CHUNK):
            _remaining(self._deadline, self.sock)
            self.sock.sendall(view[start : start + _SEND_CHUNK])


def _read_status(sock: socket.socket, deadline: float) -> int:
    """The answer's final status, from status lines and headers read within the deadline and 64 KB.

    Interim answers (102 Processing, 103 Early Hints) are skipped as http.client skips 100 Continue: the
    receiver's verdict follows them on the same connection.
    """
    answer = _DeadlineSocket(sock, deadline)
    while True:
        response = http.client.HTTPResponse(answer, method="POST")  # type: ignore[arg-type]
        response.begin()
        if not (100 <= response.status < 200) or response.status == http.client.SWITCHING_PROTOCOLS:
            return response.status


class _DeadlineSocket:
    """What `HTTPResponse` needs of a socket (`makefile`), with reads bounded by the deadline and 64 KB:
    a receiver that drips one byte a second cannot stretch the exchange past the timeout."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._file = _SharedFile(_DeadlineReader(sock, deadline))

    def makefile(self, mode: str) -> _SharedFile:
        """One buffered file for every answer read: what an interim answer's read buffered is kept."""
        return self._file


class _SharedFile(io.BufferedReader):
    """Outlives each `HTTPResponse` read from it (a response closes its file when collected); the socket
    under it is closed by the transport."""

    def close(self) -> None:
        return None


class _AnswerTooLarge(http.client.HTTPException):
    pass


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._left = MAX_ANSWER_BYTES

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise _AnswerTooLarge(f"the answer's status line and headers exceed {MAX_ANSWER_BYTES} bytes")
        _remaining(self._deadline, self._sock)
        view = memoryview(buffer)[: self._left]
        count = self._sock.recv_into(view)
        self._left -= count
        return count
