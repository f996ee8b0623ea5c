"""How one probe's connections travel: the CA bundle it trusts, its proxy, and TLS verification.

Why a module of its own: the options come from two places, `spec.transport`
and the Secret's optional `caBundle` key, and go to five SDKs. `transport_for`
builds them once, in one `Transport`; each provider only applies it to its
client (`Provider.probe(..., transport=...)`).

- **`caBundle`** (Secret key, every type): PEM CA certificates that the probe
  trusts *instead of* the system's trust store, which is what botocore's
  `verify=<path>`, requests' `verify=<path>` and urllib3's `ca_certs` do. A
  target with a public certificate then fails unless its CA is in the bundle
  too. Only the `CERTIFICATE` blocks are kept: anything else (a private key
  pasted by mistake) is dropped and never written anywhere. The SDKs want a
  file, so the certificates are written once to
  `<tmp>/destination-operator-ca/<sha256 of them>.pem` (file 0600, folder
  0700; the operator's pod has a writable emptyDir on /tmp) and reused while
  the content is the same. A bundle that holds no certificate, or one that
  OpenSSL cannot read, is `CABundleError`, reason `SecretKeyMissing` (as for
  a broken service account key file): the Secret lacks a usable value, and
  only a new Secret fixes it; the message names the key, never its content.
- **`httpsProxy`**: the proxy of the probe's https:// connections, reached
  through a CONNECT tunnel (TLS runs from the operator to the target).
  http:// targets, which only Development allows, are reached directly, as
  the `HTTPS_PROXY` convention has it.
- **`insecureSkipTLSVerify`**: Development only. Admission refuses it
  elsewhere; `transport_for` refuses it again (`InvalidSpec`), because a
  stored object can predate the rule.

The proxy and the endpoint guard: the proxy's URL is the Destination
author's choice, so `probe.verify.verify` checks it like an endpoint and pins
the addresses of its host. The target's address cannot be pinned through a
proxy: the proxy resolves the target's host itself, so what the guard checked
(the target as the operator resolves it) need not be where the proxy
connects. The proxy's own rules (and the operator's egress policy) decide
there.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import stat
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

from destination_operator.api.spec import DestinationSpec, Environment
from destination_operator.api.status import Reason
from destination_operator.errors import DestinationError, InvalidSpecError, ProbeFailedError

__all__ = [
    "CA_BUNDLE_KEY",
    "CA_FOLDER_NAME",
    "TLS_SKIPPED_NOTE",
    "CABundleError",
    "ConnectionOptions",
    "Transport",
    "ca_bundle_file",
    "certificates",
    "transport_for",
]

CA_BUNDLE_KEY = "caBundle"
"""The Secret key, read for every type, of the PEM CA certificates a probe trusts."""

CA_FOLDER_NAME = "destination-operator-ca"
"""The folder, under the system's temporary directory, of the CA bundle files."""

TLS_SKIPPED_NOTE = "TLS verification skipped (Development)"
"""Starts the success message of a probe that did not verify certificates."""

_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n\t ]*?-----END CERTIFICATE-----"
)
_write_lock = threading.Lock()


class CABundleError(DestinationError):
    """The Secret's `caBundle` holds no usable certificate. Names the key, never its content."""

    reason = Reason.SecretKeyMissing


@dataclass(frozen=True)
class Transport:
    """One probe's transport: a CA bundle file, a proxy for https:// targets, TLS verification.

    The defaults are the SDKs' own: the system's trust store, no proxy,
    certificates verified.
    """

    ca_bundle_path: str | None = None
    https_proxy: str | None = None
    verify_tls: bool = True


@dataclass(frozen=True)
class ConnectionOptions:
    """A provider's own connection options (from its constructor: tests use them), on
    which each probe's `Transport` is laid. Providers subclass it for their SDK's shape.

    `ca_bundle`: a PEM file of the CAs to trust instead of the system's (None: the
    SDK's default); `https_proxy`: a proxy URL for https:// targets (None: none);
    `verify`: False (Development only) checks no certificate.
    """

    ca_bundle: str | None = None
    https_proxy: str | None = None
    verify: bool = True

    def over(self, probe: Transport | None) -> Self:
        """These options with a probe's laid over them (those the probe sets win)."""
        if probe is None:
            return self
        return replace(
            self,
            ca_bundle=probe.ca_bundle_path or self.ca_bundle,
            https_proxy=probe.https_proxy or self.https_proxy,
            verify=self.verify and probe.verify_tls,
        )


def _blocks(pem: str) -> list[str]:
    """The `CERTIFICATE` blocks of `pem`; raises `CABundleError` when there is none."""
    blocks = [block.replace("\r\n", "\n") for block in _CERTIFICATE.findall(pem)]
    if not blocks:
        raise CABundleError(
            f"the Secret's {CA_BUNDLE_KEY} holds no PEM certificate "
            "(a block from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----)"
        )
    return blocks


def _check(blocks: list[str]) -> None:
    """Raise `CABundleError` naming the first block OpenSSL cannot read as a certificate."""
    for number, block in enumerate(blocks, start=1):
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=block)
        except (ssl.SSLError, ValueError):
            raise CABundleError(
                f"the Secret's {CA_BUNDLE_KEY}: certificate {number} of {len(blocks)} "
                "is not a valid PEM certificate"
            ) from None


def certificates(pem: str) -> str:
    """The `CERTIFICATE` blocks of `pem`, checked by OpenSSL, as the text of a bundle file.

    Raises `CABundleError` when there is none, or when one cannot be read.
    Nothing else of the text is kept.
    """
    blocks = _blocks(pem)
    _check(blocks)
    return "\n".join(blocks) + "\n"


def _private_folder() -> Path:
    """The folder of the CA bundle files, made 0700; refused if another user could write in it."""
    folder = Path(tempfile.gettempdir()) / CA_FOLDER_NAME
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise ProbeFailedError(
            f"the operator's folder for CA bundles ({CA_FOLDER_NAME} in the temporary "
            "directory) is not a folder that only the operator can write"
        )
    return folder


def ca_bundle_file(pem: str) -> str:
    """The path of a file holding the certificates of `pem` (see `certificates`).

    The file is named by the SHA-256 of its content, so the same bundle is
    written once and reused; it is written atomically, so a probe never reads
    a half-written one. A temporary directory that cannot be written is
    `ProbeFailedError`, saying so.
    """
    blocks = _blocks(pem)
    content = ("\n".join(blocks) + "\n").encode("ascii")
    try:
        return _stored(content, blocks)
    except OSError as exc:
        raise ProbeFailedError(
            f"the CA bundle could not be written to the operator's temporary directory "
            f"({CA_FOLDER_NAME}): {exc.strerror or type(exc).__name__}"
        ) from None


def _stored(content: bytes, blocks: list[str]) -> str:
    folder = _private_folder()
    path = folder / f"{hashlib.sha256(content).hexdigest()}.pem"
    with _write_lock:
        try:
            if path.read_bytes() == content:
                return str(path)  # checked before it was written, in this private folder
        except FileNotFoundError:
            pass
        _check(blocks)
        descriptor, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return str(path)


def _ca_bundle_text(secret_data: Mapping[str, bytes | str]) -> str | None:
    value = secret_data.get(CA_BUNDLE_KEY)
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise CABundleError(
                f"the Secret's {CA_BUNDLE_KEY} is not PEM text (its value is not UTF-8; "
                "a DER certificate must be converted to PEM)"
            ) from None
    return value if value.strip() else None


def transport_for(spec: DestinationSpec, secret_data: Mapping[str, bytes | str]) -> Transport:
    """The transport of a probe of `spec` with the Secret's data (raw or decoded values).

    Raises `InvalidSpecError` for TLS verification skipped outside
    Development or a proxy URL with credentials (both refused at admission
    too), and `CABundleError` for a `caBundle` without a usable certificate.
    """
    options = spec.transport
    skip = options is not None and options.insecure_skip_tls_verify
    if skip and spec.environment != Environment.Development:
        raise InvalidSpecError(
            "spec.transport.insecureSkipTLSVerify may be true only when spec.environment is "
            "Development"
        )
    proxy = (options.https_proxy or "").strip() if options is not None else ""
    if "@" in proxy:
        raise InvalidSpecError(
            "spec.transport.httpsProxy must not contain user:password@: "
            "proxy credentials are not supported"
        )
    pem = _ca_bundle_text(secret_data)
    return Transport(
        ca_bundle_path=ca_bundle_file(pem) if pem is not None else None,
        https_proxy=proxy.rstrip("/") or None,
        verify_tls=not skip,
    )
