"""The endpoint guard: user-supplied URLs are checked before any connection is made.

A Destination lets its author choose where the operator connects (an
S3-compatible endpoint, an Azure or OSS override, a webhook). Without a guard
that is a server-side request forgery: the operator's network position could
be used to reach the cloud's instance metadata service or internal services.
So, for every address the endpoint's host resolves to:

- cloud-metadata addresses and host names are always refused: the one list
  of them is `METADATA_ENDPOINTS` below, a row per address or name with the
  cloud and the page of its documentation that names it. Some of them sit in
  ranges that are otherwise only private (fd00:ec2::254, fd20:ce::254 in
  fc00::/7; 100.100.100.200 in 100.64.0.0/10) or public (Azure's
  168.63.129.16), so they are checked first;
- link-local (169.254.0.0/16, fe80::/10), multicast and reserved addresses
  are always refused;
- an IPv4 address inside an IPv6 one (IPv4-mapped, NAT64, 6to4, Teredo) is
  judged as that IPv4 address, and IPv4 spelt in decimal, octal, hex or short
  form (`2130706433`, `0177.0.0.1`, `0x7f.1`) as its dotted form;
- loopback, unspecified (0.0.0.0 reaches the local host) and private ranges
  (RFC 1918, fc00::/7, 100.64.0.0/10, ...) are refused unless the operator
  was started with `allow_private` (the tests and the demo use it).

A host that is refused raises `EndpointBlockedError` (reason
`EndpointBlocked`); a host that does not resolve raises
`EndpointUnreachableError`. If a name resolves to several addresses, every
one must pass, so one bad record is enough to refuse.

Rebinding: left to itself, the SDK would resolve the name again when it
connects, and a DNS server that answers differently the second time could
send the probe elsewhere. `probe.verify.verify` pins the addresses checked here
in the probe's `ProbeControl`, so the probe connects to them and the name is
not resolved again (see `probe.control`). Known limit: an HTTP proxy resolves
names itself; a network policy on the operator's egress is the complete
answer.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from destination_operator.errors import (
    EndpointBlockedError,
    EndpointUnreachableError,
    InvalidSpecError,
)

__all__ = [
    "METADATA_ADDRESSES",
    "METADATA_ENDPOINTS",
    "METADATA_HOSTNAMES",
    "CheckedEndpoint",
    "MetadataEndpoint",
    "Resolver",
    "check_endpoint",
    "check_endpoints",
    "classify_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the addresses it resolves to; raises OSError when it does not resolve."""


class MetadataEndpoint(NamedTuple):
    """One row of `METADATA_ENDPOINTS`."""

    entry: str
    """An IP address or a host name (lower case)."""
    service: str
    """Whose it is and what it serves."""
    source: str
    """The cloud's documentation that names it; "" where none was found (see the row)."""


_AWS_IMDS = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html"
_AWS_DNS = "https://docs.aws.amazon.com/vpc/latest/userguide/AmazonDNS-concepts.html"
_AWS_NTP = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configure-ec2-ntp.html"
_AWS_ECS = (
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v2.html"
)
_AWS_EKS = "https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html"
_GCP = "https://cloud.google.com/compute/docs/metadata/querying-metadata"
_AZURE_IMDS = "https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service"
_AZURE_WIRESERVER = (
    "https://learn.microsoft.com/en-us/azure/virtual-network/what-is-ip-address-168-63-129-16"
)
_OCI = "https://docs.oracle.com/en-us/iaas/Content/Compute/Tasks/gettingmetadata.htm"
_OCI_CLASSIC = (
    "https://docs.oracle.com/en/cloud/cloud-at-customer/occ-get-started/"
    "retrieve-predefined-instance-metadata.html"
)
_ALIBABA = "https://www.alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata"
_SCALEWAY = "https://www.scaleway.com/en/developers/api/instance/user-data"
_TENCENT = "https://www.tencentcloud.com/document/product/213/4934"
_EQUINIX = "https://deploy.equinix.com/developers/docs/metal/server-metadata/metadata"
_PACKET = "https://www.packet.com/developers/docs/servers/key-features/metadata/"

METADATA_ENDPOINTS: tuple[MetadataEndpoint, ...] = tuple(
    MetadataEndpoint(*row)
    for row in (
        ("169.254.169.254", "AWS EC2 instance metadata (IMDS)", _AWS_IMDS),
        ("fd00:ec2::254", "AWS EC2 instance metadata over IPv6", _AWS_IMDS),
        ("169.254.169.254", "Azure Instance Metadata Service", _AZURE_IMDS),
        ("169.254.169.254", "Oracle Cloud (OCI) instance metadata", _OCI),
        ("fd00:c1::a9fe:a9fe", "Oracle Cloud (OCI) instance metadata over IPv6", _OCI),
        ("169.254.170.2", "AWS ECS task metadata and task role credentials", _AWS_ECS),
        ("169.254.170.23", "AWS EKS Pod Identity Agent (credentials)", _AWS_EKS),
        ("fd00:ec2::23", "AWS EKS Pod Identity Agent over IPv6", _AWS_EKS),
        ("169.254.169.253", "AWS VPC DNS (Route 53 Resolver)", _AWS_DNS),
        ("fd00:ec2::253", "AWS VPC DNS over IPv6", _AWS_DNS),
        ("169.254.169.123", "AWS Time Sync (NTP)", _AWS_NTP),
        ("fd00:ec2::123", "AWS Time Sync over IPv6", _AWS_NTP),
        ("fd20:ce::254", "GCP Compute Engine metadata over IPv6", _GCP),
        ("168.63.129.16", "Azure WireServer (a public-range address)", _AZURE_WIRESERVER),
        ("100.100.100.200", "Alibaba Cloud ECS instance metadata", _ALIBABA),
        ("192.0.0.192", "Oracle Cloud at Customer (Compute Classic) metadata", _OCI_CLASSIC),
        ("169.254.42.42", "Scaleway instance metadata", _SCALEWAY),
        ("fd00:42::42", "Scaleway instance metadata over IPv6", _SCALEWAY),
        ("metadata.google.internal", "GCP Compute Engine metadata", _GCP),
        ("metadata.goog", "GCP Compute Engine metadata", _GCP),
        ("metadata.tencentyun.com", "Tencent Cloud CVM instance metadata", _TENCENT),
        ("metadata.platformequinix.com", "Equinix Metal metadata", _EQUINIX),
        ("metadata.packet.net", "Equinix Metal (formerly Packet) metadata", _PACKET),
        # Kept without a source: names that reach a metadata service through a cloud's
        # resolver, for which no page of the cloud's own was found. Refusing them costs nothing.
        ("metadata", "GCP: the short name of metadata.google.internal", ""),
        ("instance-data", "AWS EC2: a resolver alias of the IMDS", ""),
        ("instance-data.ec2.internal", "AWS EC2: a resolver alias of the IMDS", ""),
    )
)
"""Cloud metadata addresses and host names, each with its source: always refused.

An address may have a row per cloud that documents it; `METADATA_ADDRESSES` and
`METADATA_HOSTNAMES` are derived from this table, the one place to add to.
"""


def _as_address(entry: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(entry)
    except ValueError:
        return None


METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    address for row in METADATA_ENDPOINTS if (address := _as_address(row.entry)) is not None
)
"""The addresses of `METADATA_ENDPOINTS`."""

METADATA_HOSTNAMES: frozenset[str] = frozenset(
    row.entry for row in METADATA_ENDPOINTS if _as_address(row.entry) is None
)
"""The host names of `METADATA_ENDPOINTS`: refused before they are even resolved."""

_ALWAYS_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local
        "fe80::/10",  # IPv6 link-local
    )
)
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT, also used inside clouds
        "fc00::/7",  # IPv6 unique local
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class CheckedEndpoint:
    """An endpoint that passed the guard: its host and the addresses it resolved to."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _resolve(host: str, port: int) -> Sequence[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, NAT64, 6to4 or Teredo IPv6 address,
    else `address`: each of them reaches that IPv4 address through a gateway."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]  # the client's address
    return address


_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}")


def _numeric_ipv4(host: str) -> str | None:
    """The dotted-quad form of an IPv4 address spelt in decimal, octal, hex or short form
    (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`), which resolvers accept; else None."""
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def classify_address(address: str) -> tuple[bool, str]:
    """(always refused?, kind) for one address; kind is "" for an ordinary public address.

    Kinds: `cloud metadata`, `link-local`, `multicast`, `reserved`, `loopback`,
    `unspecified`, `private`.
    """
    raw = ipaddress.ip_address(address.split("%", 1)[0])
    ip = _embedded_ipv4(raw)
    # First: metadata addresses also sit in private (fc00::/7, 100.64.0.0/10) and public ranges.
    if raw in METADATA_ADDRESSES or ip in METADATA_ADDRESSES:
        return True, "cloud metadata"
    if ip.is_link_local or any(ip in net for net in _ALWAYS_BLOCKED_NETWORKS):
        return True, "link-local"
    # Before `is_reserved`: Python counts ::/8, and so ::1 and ::, as reserved.
    if ip.is_loopback:
        return False, "loopback"
    if ip.is_unspecified:
        return False, "unspecified"
    if ip.is_multicast:
        return True, "multicast"
    if ip.is_reserved:
        return True, "reserved"
    if ip.is_private or any(ip in net for net in _PRIVATE_NETWORKS):
        return False, "private"
    return False, ""


def check_endpoint(
    url: str, *, allow_private: bool, resolve: Resolver | None = None
) -> CheckedEndpoint:
    """Refuse `url` unless every address its host resolves to is allowed; see the module doc.

    Raises `InvalidSpecError` for a URL that is not http(s) with a host,
    `EndpointBlockedError` for a refused address, `EndpointUnreachableError`
    when the host does not resolve.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidSpecError(f"endpoint {url!r} is not a valid URL: {exc}") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidSpecError(f"endpoint {url!r} must be an http:// or https:// URL with a host")
    if host in METADATA_HOSTNAMES:
        raise EndpointBlockedError(
            f"endpoint host {host!r} is a cloud metadata service and is always refused"
        )

    host = _numeric_ipv4(host) or host
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        addresses: Sequence[str] = [host]
    else:
        try:
            addresses = (resolve or _resolve)(host, port)
        except (OSError, UnicodeError) as exc:
            raise EndpointUnreachableError(
                f"endpoint host {host!r} does not resolve: {exc}"
            ) from None
        if not addresses:
            raise EndpointUnreachableError(f"endpoint host {host!r} resolves to no address")

    for address in addresses:
        always, kind = classify_address(address)
        shown = host if address == host else f"{host!r} ({address})"
        if always:
            raise EndpointBlockedError(f"endpoint {shown} is {kind} and is always refused")
        if kind and not allow_private:
            raise EndpointBlockedError(
                f"endpoint {shown} is a {kind} address; the operator refuses those "
                "unless it is started with private endpoints allowed"
            )
    return CheckedEndpoint(url=url, host=host, port=port, addresses=tuple(addresses))


def check_endpoints(
    urls: Iterable[str], *, allow_private: bool, resolve: Resolver | None = None
) -> list[CheckedEndpoint]:
    """`check_endpoint` for each URL, in order; the first refusal raises."""
    return [check_endpoint(u, allow_private=allow_private, resolve=resolve) for u in urls]
