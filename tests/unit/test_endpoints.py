"""The endpoint guard: metadata and link-local always refused, private only when allowed."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from destination_operator.api.status import Reason
from destination_operator.errors import (
    EndpointBlockedError,
    EndpointUnreachableError,
    InvalidSpecError,
)
from destination_operator.probe.endpoints import (
    METADATA_ENDPOINTS,
    MetadataEndpoint,
    check_endpoint,
    check_endpoints,
    classify_address,
)


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    """A resolver answering `addresses` for any name (DNS cannot be made to lie on demand)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)

    return resolve


def unresolvable(host: str, port: int) -> Sequence[str]:
    raise OSError(-2, "Name or service not known")


ALWAYS = [
    "http://169.254.169.254",
    "http://169.254.169.254:80/latest/meta-data/",
    "https://169.254.170.2",
    "http://169.254.10.20",
    "http://[fe80::1]",
    "http://[fd00:ec2::254]",
    "http://[::ffff:169.254.169.254]",
    "http://[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "http://100.100.100.200",
    "http://[2002:a9fe:a9fe::1]",  # 6to4 of 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo, client 169.254.169.254
    "http://2852039166",  # 169.254.169.254 in decimal
    "http://0xa9fea9fe",  # ... in hex
    "http://0251.0376.0251.0376",  # ... in octal
    "http://0xa9.0xfe.0xa9.0xfe",
    "http://169.254.43518",  # short form
    "http://metadata.google.internal",
    "http://METADATA.google.internal.",
    "http://224.0.0.1",
]

PRIVATE = [
    "http://127.0.0.1:9000",
    "http://127.1.2.3",
    "http://[::1]:9000",
    "http://0.0.0.0",
    "http://10.1.2.3",
    "http://172.16.0.1",
    "http://192.168.1.1",
    "http://100.64.0.1",
    "http://[fd12:3456::1]",
    "http://[::ffff:127.0.0.1]",
    "http://localhost:9000",
    "http://2130706433",  # 127.0.0.1 in decimal
    "http://0x7f.1",
    "http://0177.0.0.1",
    "http://127.1",
    "http://012.0.0.1",  # 10.0.0.1 in octal
    "http://[2002:7f00:1::]",  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize("url", ALWAYS)
@pytest.mark.parametrize("allow_private", [False, True])
def test_metadata_and_link_local_are_always_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(EndpointBlockedError) as info:
        check_endpoint(url, allow_private=allow_private)
    assert info.value.reason == Reason.EndpointBlocked
    assert "always refused" in info.value.message


@pytest.mark.parametrize("url", PRIVATE)
def test_loopback_and_private_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(EndpointBlockedError) as info:
        check_endpoint(url, allow_private=False)
    assert "unless" in info.value.message
    checked = check_endpoint(url, allow_private=True)
    assert checked.addresses


def test_public_address_passes() -> None:
    checked = check_endpoint("https://93.184.215.14/bucket", allow_private=False)
    assert checked.addresses == ("93.184.215.14",)
    assert checked.port == 443


def test_every_resolved_address_must_pass() -> None:
    two = resolver("93.184.215.14", "169.254.169.254")
    with pytest.raises(EndpointBlockedError) as info:
        check_endpoint("https://storage.example.com", allow_private=True, resolve=two)
    assert "169.254.169.254" in info.value.message
    private = resolver("93.184.215.14", "10.0.0.7")
    with pytest.raises(EndpointBlockedError):
        check_endpoint("https://storage.example.com", allow_private=False, resolve=private)
    ok = check_endpoint("https://storage.example.com", allow_private=True, resolve=private)
    assert ok.host == "storage.example.com"


def test_a_name_resolving_to_metadata_is_refused() -> None:
    with pytest.raises(EndpointBlockedError):
        check_endpoint(
            "http://rebind.example.com",
            allow_private=True,
            resolve=resolver("169.254.169.254"),
        )


def test_unresolvable_host_is_endpoint_unreachable() -> None:
    with pytest.raises(EndpointUnreachableError) as info:
        check_endpoint("https://nowhere.invalid", allow_private=False, resolve=unresolvable)
    assert info.value.reason == Reason.EndpointUnreachable
    with pytest.raises(EndpointUnreachableError):
        check_endpoint("https://nowhere.invalid", allow_private=False, resolve=resolver())


def test_real_resolver_on_localhost() -> None:
    with pytest.raises(EndpointBlockedError):
        check_endpoint("http://localhost:1", allow_private=False)
    assert check_endpoint("http://localhost:1", allow_private=True).port == 1


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "http://", "http://[::1"])
def test_malformed_urls_are_invalid_spec(url: str) -> None:
    with pytest.raises(InvalidSpecError):
        check_endpoint(url, allow_private=True)


def test_check_endpoints_stops_at_the_first_refusal() -> None:
    assert check_endpoints([], allow_private=False) == []
    with pytest.raises(EndpointBlockedError):
        check_endpoints(["http://127.0.0.1:9000", "http://169.254.169.254"], allow_private=False)


@given(st.ip_addresses(v=4, network="169.254.0.0/16"))
def test_all_of_ipv4_link_local_is_always_refused(address: object) -> None:
    always, _ = classify_address(str(address))
    assert always


@given(st.ip_addresses(v=4, network="10.0.0.0/8") | st.ip_addresses(v=4, network="127.0.0.0/8"))
def test_private_and_loopback_are_refusable(address: object) -> None:
    always, kind = classify_address(str(address))
    assert not always and kind in {"private", "loopback"}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://2852039166", "cloud metadata"),
        ("http://0251.0376.0251.0376", "cloud metadata"),
        ("http://0x7f.1", "loopback"),
        ("http://127.1", "loopback"),
        ("http://[2002:a9fe:a9fe::1]", "cloud metadata"),
        ("http://[2002:c0a8:101::1]", "private"),  # 6to4 of 192.168.1.1
    ],
)
def test_numeric_spellings_are_judged_as_addresses_not_sent_to_dns(url: str, kind: str) -> None:
    # A resolver that would say "public": the guard must not ask it.
    with pytest.raises(EndpointBlockedError) as info:
        check_endpoint(url, allow_private=False, resolve=resolver("93.184.215.14"))
    assert kind in info.value.message


def _url_of(entry: str) -> str:
    return f"http://[{entry}]" if ":" in entry else f"http://{entry}"


@pytest.mark.parametrize("row", METADATA_ENDPOINTS, ids=lambda row: f"{row.entry}-{row.service}")
@pytest.mark.parametrize("allow_private", [False, True])
def test_every_metadata_endpoint_is_refused(row: MetadataEndpoint, allow_private: bool) -> None:
    """Each row of the table, so a new row is tested as soon as it is added."""
    # A resolver that would say "public": a host name must be refused before it is asked.
    with pytest.raises(EndpointBlockedError) as info:
        check_endpoint(
            _url_of(row.entry), allow_private=allow_private, resolve=resolver("93.184.215.14")
        )
    assert info.value.reason == Reason.EndpointBlocked
    assert "cloud metadata" in info.value.message
    assert "always refused" in info.value.message


def _ipv4_rows() -> list[MetadataEndpoint]:
    rows = []
    for row in METADATA_ENDPOINTS:
        try:
            if ipaddress.ip_address(row.entry).version == 4:
                rows.append(row)
        except ValueError:  # a host name
            continue
    return rows


@pytest.mark.parametrize("row", _ipv4_rows(), ids=lambda row: f"{row.entry}-{row.service}")
@pytest.mark.parametrize("form", ["::ffff:{}", "64:ff9b::{}"], ids=["ipv4-mapped", "nat64"])
def test_every_ipv4_metadata_address_is_refused_inside_ipv6(
    row: MetadataEndpoint, form: str
) -> None:
    with pytest.raises(EndpointBlockedError) as info:
        check_endpoint(f"http://[{form.format(row.entry)}]", allow_private=True)
    assert "cloud metadata" in info.value.message


def test_azure_wireserver_is_refused_though_its_address_is_public() -> None:
    assert ipaddress.ip_address("168.63.129.16").is_global
    assert classify_address("168.63.129.16") == (True, "cloud metadata")
    # Its neighbours stay ordinary public addresses.
    assert classify_address("168.63.129.17") == (False, "")
