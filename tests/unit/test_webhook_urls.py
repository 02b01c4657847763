"""Which webhook URLs a broker may save and which addresses a delivery may reach (issue 16, "safe to point
anywhere"): a URL typed by a customer must never let our servers reach our own network or the metadata
service, whatever spelling of an address it uses."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.webhook_urls import MAX_URL_LENGTH, address_allowed, check_url

DEPLOYED = False
LOCAL = True


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://hooks.example.com/relais", "https://hooks.example.com/relais"),
        ("HTTPS://Hooks.Example.COM/Relais", "https://hooks.example.com/Relais"),
        ("https://hooks.example.com", "https://hooks.example.com/"),
        ("https://hooks.example.com:443/x", "https://hooks.example.com/x"),
        ("https://hooks.example.com:8443/x?a=1&b=2", "https://hooks.example.com:8443/x?a=1&b=2"),
        ("https://hooks.example.com/x#fragment", "https://hooks.example.com/x"),
        ("https://hooks.example.com./x", "https://hooks.example.com/x"),
        ("https://crm.exämple.fr/hook", "https://crm.xn--exmple-cua.fr/hook"),
        ("https://hooks.example.com/é?q=ü", "https://hooks.example.com/%C3%A9?q=%C3%BC"),
        ("https://8.8.8.8/hook", "https://8.8.8.8/hook"),
        ("https://[2001:4860:4860::8888]:8443/p", "https://[2001:4860:4860::8888]:8443/p"),
        ("https://[2001:4860:4860:0:0:0:0:8888]/", "https://[2001:4860:4860::8888]/"),
    ],
)
def test_a_public_https_url_is_accepted_in_its_normal_form(url: str, normalized: str) -> None:
    assert check_url(url, DEPLOYED) == normalized


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/", "must be an https:// URL"),
        ("http://127.0.0.1:8080/", "must be an https:// URL"),
        ("http://localhost:8080/", "must be an https:// URL"),
        ("http://[::ffff:127.0.0.1]/", "must be an https:// URL"),
        ("ftp://hooks.example.com/", "must be an https:// URL"),
        ("javascript:alert(1)", "must be an https:// URL"),
        ("hooks.example.com/relais", "must be an https:// URL"),
        ("", "must be an https:// URL"),
        ("https:///relais", "has no host"),
        ("https://:443/relais", "has no host"),
        ("https://[::1/", "is not a URL"),
        ("https://user:pw@hooks.example.com/", "must not contain a user name or password"),
        ("https://user@hooks.example.com/", "must not contain a user name or password"),
        ("https://hooks.example.com@169.254.169.254/", "must not contain a user name or password"),
        ("https://example.com:0/", "has a port that is not a number from 1 to 65535"),
        ("https://example.com:65536/", "has a port that is not a number from 1 to 65535"),
        ("https://example.com:99999999/", "has a port that is not a number from 1 to 65535"),
        ("https://example.com:https/", "has a port that is not a number from 1 to 65535"),
        ("https://example.com:-1/", "has a port that is not a number from 1 to 65535"),
        ("https://hooks.example.com/a b", "must not contain spaces, backslashes or control characters"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "must not contain spaces, backslashes or control"),
        ("https://hooks.example.com\\@127.0.0.1/", "must not contain spaces, backslashes or control"),
        ("https://hooks..example.com/", "has a host name that cannot be read"),
        ("https://-hooks.example.com/", "has a host name that cannot be read"),
        ("https://" + "a" * 64 + ".example.com/", "has a host name that cannot be read"),
        ("https://" + "abcdefghi." * 26 + "com/", "has a host name that cannot be read"),
        ("https://hooks.exa_mple.com:443:443/", "has a port that is not a number from 1 to 65535"),
        ("https://hooks.exa%6dple.com/", "has a host name that cannot be read"),
        ("https://[fe80::1%25eth0]/", "has an IPv6 address that cannot be read"),
        ("https://[not:an:address]/", "is not a URL"),
        ("https://localhost/", "must be a public host name"),
        ("https://LOCALHOST./", "must be a public host name"),
        ("https://api.localhost/", "must be a public host name"),
        ("https://printer.local/", "must be a public host name"),
        ("https://db.internal/", "must be a public host name"),
        ("https://ip-10-0-0-5.eu-west-3.compute.internal/", "must be a public host name"),
        ("https://router.home.arpa/", "must be a public host name"),
        ("https://intranet/", "must be a public host name"),
    ],
)
def test_a_url_that_cannot_receive_webhooks_in_a_deployed_stage_is_refused_naming_url(
    url: str, why: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_url(url, DEPLOYED)

    assert [issue.field for issue in refused.value.details] == ["url"]
    assert refused.value.details[0].issue.startswith(why)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://127.255.255.254/",
        "https://10.0.0.5/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.170.2/v2/credentials",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://255.255.255.255/",
        "https://224.0.0.1/",
        "https://192.0.2.10/",
        "https://[::1]/",
        "https://[::]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[fd00:ec2::254]/",
        "https://[fc00::1]/",
        "https://[fe80::1]/",
        "https://[fec0::1]/",
        "https://[ff02::1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[64:ff9b::10.0.0.1]/",
        "https://[2002:a9fe:a9fe::1]/",
        "https://[2002:7f00:1::]/",
        "https://[::127.0.0.1]/",
    ],
)
def test_a_literal_address_of_our_own_network_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_url(url, DEPLOYED)

    assert refused.value.details[0].issue.startswith("points to an address that cannot receive webhooks")


@pytest.mark.parametrize(
    "url",
    [
        "https://0x7f000001/",
        "https://0X7F000001/",
        "https://2130706433/",
        "https://017700000001/",
        "https://0177.0.0.1/",
        "https://0x7f.0.0.1/",
        "https://127.1/",
        "https://127.0.1/",
        "https://0251.0376.0251.0376/",
        "https://2852039166/",
        "https://1.2.3.4.5/",
        "https://08.8.8.8/",
        "https://example.123/",
    ],
)
def test_a_numeric_host_in_another_spelling_than_dotted_decimal_is_refused(url: str) -> None:
    """getaddrinfo and browsers read these as 127.0.0.1 or 169.254.169.254: only one spelling is checked."""
    for stage in (DEPLOYED, LOCAL):
        with pytest.raises(InvalidInput) as refused:
            check_url(url, stage)

        assert refused.value.details[0].issue == (
            "has a numeric host that is not a dotted-decimal IPv4 address"
        )


def test_a_url_longer_than_2048_characters_is_refused() -> None:
    prefix = "https://hooks.example.com/"
    longest = prefix + "a" * (MAX_URL_LENGTH - len(prefix))

    assert check_url(longest, DEPLOYED) == longest
    with pytest.raises(InvalidInput) as refused:
        check_url(longest + "a", DEPLOYED)
    assert refused.value.details[0].issue == "must be at most 2048 characters"


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("http://127.0.0.1:9000/hooks", "http://127.0.0.1:9000/hooks"),
        ("http://localhost:9000/hooks", "http://localhost:9000/hooks"),
        ("http://LocalHost:9000", "http://localhost:9000/"),
        ("http://127.0.0.1/", "http://127.0.0.1/"),
        ("https://localhost:8443/", "https://localhost:8443/"),
        ("https://127.0.0.1:8443/", "https://127.0.0.1:8443/"),
        ("https://[::1]:8443/", "https://[::1]:8443/"),
        ("https://hooks.example.com/relais", "https://hooks.example.com/relais"),
        ("https://intranet/", "https://intranet/"),
    ],
)
def test_the_local_stage_also_accepts_a_receiver_on_this_machine(url: str, normalized: str) -> None:
    assert check_url(url, LOCAL) == normalized


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/", "http:// is only for 127.0.0.1 or localhost"),
        ("http://[::1]:9000/", "http:// is only for 127.0.0.1 or localhost"),
        ("http://10.0.0.5:9000/", "http:// is only for 127.0.0.1 or localhost"),
        ("https://10.0.0.5/", "points to an address that cannot receive webhooks"),
        ("https://169.254.169.254/", "points to an address that cannot receive webhooks"),
        ("https://[fd00:ec2::254]/", "points to an address that cannot receive webhooks"),
        ("ftp://127.0.0.1/", "must be an http:// or https:// URL"),
        ("http://user:pw@127.0.0.1:9000/", "must not contain a user name or password"),
        ("http://127.0.0.1:0/", "has a port that is not a number from 1 to 65535"),
    ],
)
def test_the_local_stage_still_refuses_other_networks_and_plain_http_elsewhere(url: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_url(url, LOCAL)

    assert refused.value.details[0].issue.startswith(why)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "1.1.1.1",
        "192.0.0.9",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_a_public_address_may_receive_deliveries(address: str) -> None:
    assert address_allowed(address, DEPLOYED)
    assert address_allowed(address, LOCAL)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",
        "172.31.255.255",
        "192.168.0.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "169.254.170.2",
        "169.254.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "fc00::1",
        "fe80::1",
        "fe80::1%eth0",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "::",
        "::ffff:10.0.0.5",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::a00:5",
        "64:ff9b:1::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "2002:a00:5::1",
        "2001::1",
        "2001:db8::1",
        "::169.254.169.254",
        "not an address",
        "",
        "0x7f000001",
        "2130706433",
    ],
)
def test_a_private_link_local_metadata_or_special_address_never_receives_deliveries(address: str) -> None:
    assert not address_allowed(address, DEPLOYED)
    assert not address_allowed(address, LOCAL)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"])
def test_loopback_is_allowed_only_in_the_local_stage(address: str) -> None:
    assert not address_allowed(address, DEPLOYED)
    assert address_allowed(address, LOCAL)
