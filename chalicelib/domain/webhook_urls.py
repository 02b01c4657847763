"""Which URLs a webhook endpoint may name, and which addresses a delivery may connect to.

A webhook URL is typed by a broker's admin and then fetched by our servers, from inside AWS: without these
rules, an endpoint pointed at `http://169.254.169.254/` (the instance metadata service), at a private
address of our VPC or at a name that resolves to one would turn Relais into a proxy into its own network
(server-side request forgery). So:
- `check_url` is applied when an endpoint is created or changed (a 400 naming `url`) and again at each
  delivery: https only in deployed stages, no credentials in the URL, a real host name, and a literal IP
  only when `address_allowed` says so;
- `address_allowed` is applied by the transport to every address the host name resolves to, at delivery
  time, and the socket is connected to the address that was checked (DNS rebinding).

Numeric hosts are only accepted in their canonical form (four decimal numbers, or a bracketed IPv6
address): browsers and `getaddrinfo` read `0x7f000001`, `2130706433`, `0177.0.0.1` or `127.1` as 127.0.0.1,
and a rule that does not parse them the same way could be walked around.

Pure: no network, no DNS.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from chalicelib.domain.errors import FieldIssue, InvalidInput

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: the embedded address may sit anywhere
_TEREDO = ipaddress.ip_network("2001::/32")

# Names that only mean something inside a network (RFC 6761, RFC 6762, RFC 8375, common private suffixes).
_LOCAL_SUFFIXES = ("localhost", "local", "localdomain", "internal", "intranet", "lan", "home.arpa")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1"})
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
_DEFAULT_PORTS = {"https": 443, "http": 80}
_PORT_ISSUE = "has a port that is not a number from 1 to 65535"


def address_allowed(address: str, local_stage: bool) -> bool:
    """Whether a delivery may connect to `address` (an IPv4 or IPv6 address, as text).

    `is_global` is the base rule; the explicit checks below cover what it misses on Python 3.11 (site-local
    and multicast ranges count as global there) and the IPv6 forms that carry an IPv4 address (mapped,
    NAT64, 6to4), judged by the address they carry. The local stage also allows loopback, where the
    developer's receiver listens.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed in _NAT64_LOCAL_USE or parsed in _TEREDO:
            return False
        if parsed.ipv4_mapped is not None:
            return _allowed(parsed.ipv4_mapped, local_stage)
        if parsed in _NAT64_WELL_KNOWN:
            return _allowed(ipaddress.IPv4Address(int(parsed) & 0xFFFFFFFF), local_stage)
        if parsed.sixtofour is not None and not _allowed(parsed.sixtofour, local_stage):
            return False
    return _allowed(parsed, local_stage)


def _allowed(address: IPAddress, local_stage: bool) -> bool:
    if local_stage and address.is_loopback:
        return True
    if address in _METADATA_ADDRESSES:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        special = address in _SHARED_ADDRESS_SPACE
    else:
        special = address.is_site_local or address in _UNIQUE_LOCAL or address.scope_id is not None
    return not (
        special
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_url(url: str, local_stage: bool) -> str:
    """`url` normalized (lower-case scheme and host, IDNA host, default port dropped, no fragment), or
    InvalidInput naming `url` with the reason it cannot receive webhooks."""
    issue, normalized = _url_issue(url, local_stage)
    if issue is not None:
        raise InvalidInput("The webhook URL cannot be used.", [FieldIssue("url", issue)])
    return normalized


def _url_issue(url: str, local_stage: bool) -> tuple[str | None, str]:
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters", ""
    if _FORBIDDEN_CHARACTERS.search(url):
        return "must not contain spaces, backslashes or control characters", ""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "is not a URL", ""
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return "must be an https:// URL" if not local_stage else "must be an http:// or https:// URL", ""
    if not parts.netloc:
        return "has no host", ""
    if "@" in parts.netloc:
        return "must not contain a user name or password", ""
    host_text = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    if host_text in ("", "[]"):
        return "has no host", ""
    try:
        port = parts.port
    except ValueError:
        return _PORT_ISSUE, ""
    if port == 0:
        return _PORT_ISSUE, ""
    host_issue, host, address = _host(host_text)
    if host_issue is not None:
        return host_issue, ""
    loopback_name = host in _LOOPBACK_NAMES
    if scheme == "http" and not (local_stage and loopback_name):
        return (
            "must be an https:// URL" if not local_stage else "http:// is only for 127.0.0.1 or localhost",
            "",
        )
    if address is not None and not address_allowed(str(address), local_stage):
        return f"points to an address that cannot receive webhooks ({address})", ""
    if address is None and not local_stage and _local_name(host):
        return "must be a public host name", ""
    netloc = f"[{host}]" if isinstance(address, ipaddress.IPv6Address) else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return None, urllib.parse.urlunsplit((scheme, netloc, path, query, ""))


def _host(text: str) -> tuple[str | None, str, IPAddress | None]:
    """(issue, normalized host, literal address) of a URL's host part."""
    if text.startswith("["):
        if not text.endswith("]") or "%" in text:
            return "has an IPv6 address that cannot be read", "", None
        try:
            v6 = ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            return "has an IPv6 address that cannot be read", "", None
        return None, v6.compressed, v6
    try:
        host = text.encode("idna").decode("ascii").lower() if not text.isascii() else text.lower()
    except UnicodeError:
        return "has a host name that cannot be read", "", None
    host = host.removesuffix(".")
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            v4 = ipaddress.IPv4Address(host)
        except ValueError:
            return "has a numeric host that is not a dotted-decimal IPv4 address", "", None
        return None, v4.compressed, v4
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return "has a host name that cannot be read", "", None
    return None, host, None


def _local_name(host: str) -> bool:
    """Names that resolve only inside a network: one label (completed by search domains) or a local suffix."""
    return "." not in host or any(host == suffix or host.endswith("." + suffix) for suffix in _LOCAL_SUFFIXES)
