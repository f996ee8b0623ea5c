"""The probe's transport, offline: `spec.transport`, the Secret's `caBundle`, and how each
provider's client options take them. The same options against real servers are in
test_transport.py, beside this file."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from certs import issue
from destination_operator.api.spec import DestinationSpec, Environment, parse_spec, spec_problems
from destination_operator.api.status import Reason
from destination_operator.errors import InvalidSpecError, ProbeFailedError
from destination_operator.providers import azure, gcs, oss
from destination_operator.providers.s3 import S3Transport, client_config
from destination_operator.providers.transport import (
    CA_BUNDLE_KEY,
    CA_FOLDER_NAME,
    CABundleError,
    ConnectionOptions,
    Transport,
    ca_bundle_file,
    certificates,
    transport_for,
)

CANARY = "canary-SECRET-never-show-me-51c0e8a7"


def certificate_pem(name: str = "transport test CA") -> str:
    return issue(name, ca=True).pem


PRIVATE_KEY = f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n"


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary directory, for these tests: a folder of their own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def spec(**transport: Any) -> DestinationSpec:
    raw: dict[str, Any] = {
        "type": "Webhook",
        "environment": "Development",
        "webhook": {"url": "https://hooks.example.com/x"},
        "credentials": {"secretRef": {"name": "hook"}},
    }
    if transport:
        raw["transport"] = transport
    return parse_spec(raw)


# --- the CA bundle -------------------------------------------------------------------------


def test_only_the_certificates_are_kept() -> None:
    first, second = certificate_pem("first"), certificate_pem("second")
    text = f"# our CAs\r\n{first.replace(chr(10), chr(13) + chr(10))}{PRIVATE_KEY}junk\n{second}"
    kept = certificates(text)
    assert kept == f"{first.strip()}\n{second.strip()}\n"
    assert CANARY not in kept and "PRIVATE KEY" not in kept


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (PRIVATE_KEY, "holds no PEM certificate"),
        (CANARY, "holds no PEM certificate"),
        (
            f"-----BEGIN CERTIFICATE-----\n{CANARY}\n-----END CERTIFICATE-----\n",
            "holds no PEM certificate",  # not base64: not a PEM block at all
        ),
        (
            "-----BEGIN CERTIFICATE-----\nQ0FOQVJZ\n-----END CERTIFICATE-----\n",
            "certificate 1 of 1 is not a valid PEM certificate",
        ),
    ],
)
def test_a_bundle_without_a_usable_certificate_is_refused_by_key_name(text: str, says: str) -> None:
    with pytest.raises(CABundleError) as caught:
        certificates(text)
    assert caught.value.reason == Reason.SecretKeyMissing
    assert CA_BUNDLE_KEY in caught.value.message and says in caught.value.message
    assert CANARY not in caught.value.message


def test_the_broken_certificate_is_counted() -> None:
    broken = "-----BEGIN CERTIFICATE-----\nQ0FOQVJZ\n-----END CERTIFICATE-----\n"
    with pytest.raises(CABundleError, match="certificate 2 of 2"):
        certificates(certificate_pem() + broken)


def test_the_file_is_private_named_by_content_and_written_once(private_tmp: Path) -> None:
    pem = certificate_pem()
    path = Path(ca_bundle_file(pem))
    folder = private_tmp / CA_FOLDER_NAME
    assert path.parent == folder and path.suffix == ".pem"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == certificates(pem)
    written = path.stat()
    again = Path(ca_bundle_file(f"a comment\n{pem}"))  # the same certificates
    assert again == path and again.stat().st_ino == written.st_ino
    other = Path(ca_bundle_file(certificate_pem()))
    assert other != path
    assert sorted(p.name for p in folder.iterdir()) == sorted([path.name, other.name])


def test_a_damaged_file_is_written_again(private_tmp: Path) -> None:
    pem = certificate_pem()
    path = Path(ca_bundle_file(pem))
    path.write_text("damaged")
    assert Path(ca_bundle_file(pem)) == path
    assert path.read_text() == certificates(pem)


def test_a_folder_others_can_write_is_not_used(private_tmp: Path) -> None:
    folder = private_tmp / CA_FOLDER_NAME
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(ProbeFailedError, match="only the operator can write"):
        ca_bundle_file(certificate_pem())


# --- spec.transport and the Secret -> Transport ----------------------------------------------


def test_nothing_set_is_the_sdks_default() -> None:
    assert transport_for(spec(), {"verificationToken": b"t"}) == Transport()
    assert transport_for(spec(), {CA_BUNDLE_KEY: b" \n"}) == Transport()


def test_every_option() -> None:
    pem = certificate_pem()
    options = transport_for(
        spec(httpsProxy="http://proxy.example.com:3128/", insecureSkipTLSVerify=True),
        {CA_BUNDLE_KEY: pem.encode()},
    )
    assert options.https_proxy == "http://proxy.example.com:3128"
    assert options.verify_tls is False
    assert options.ca_bundle_path is not None
    assert Path(options.ca_bundle_path).read_text() == certificates(pem)


def test_a_bundle_that_is_not_text_is_refused() -> None:
    with pytest.raises(CABundleError, match="not UTF-8"):
        transport_for(spec(), {CA_BUNDLE_KEY: b"\x30\x82\x01\xff"})


def test_skipping_verification_outside_development_is_refused_even_if_stored() -> None:
    stored = spec(insecureSkipTLSVerify=True).model_copy(
        update={"environment": Environment.Production}
    )
    with pytest.raises(InvalidSpecError, match=r"only when spec\.environment is Development"):
        transport_for(stored, {})


def test_proxy_credentials_are_refused_even_if_stored() -> None:
    valid = spec(httpsProxy="http://proxy.example.com:3128")
    assert valid.transport is not None
    stored = valid.model_copy(
        update={
            "transport": valid.transport.model_copy(
                update={"https_proxy": f"http://user:{CANARY}@proxy.example.com:3128"}
            )
        }
    )
    with pytest.raises(InvalidSpecError, match="proxy credentials are not supported") as caught:
        transport_for(stored, {})
    assert CANARY not in caught.value.message


@pytest.mark.parametrize(
    "proxy",
    ["http://proxy:3128", "https://proxy.example.com", "http://10.0.0.1:3128/", "http://p"],
)
def test_proxy_urls_accepted(proxy: str) -> None:
    assert spec_problems({**spec().model_dump(), "transport": {"httpsProxy": proxy}}) == []


def test_insecure_is_allowed_in_development_only() -> None:
    raw = spec(insecureSkipTLSVerify=True).model_dump()
    assert spec_problems(raw) == []
    for environment in ("Production", "Staging"):
        problems = spec_problems({**raw, "environment": environment})
        assert [p.field for p in problems] == ["spec.transport.insecureSkipTLSVerify"]
    explicit_false = {**raw, "environment": "Production", "transport": {}}
    assert spec_problems(explicit_false) == []


# --- each provider's client options ------------------------------------------------------------


def test_the_probes_options_win_over_the_providers_where_set() -> None:
    probe = Transport(ca_bundle_path="/probe.pem", https_proxy=None, verify_tls=True)
    own = ConnectionOptions(ca_bundle="/own.pem", https_proxy="http://own:3128")
    assert own.over(probe) == ConnectionOptions("/probe.pem", "http://own:3128", True)
    assert ConnectionOptions().over(Transport()) == ConnectionOptions()


def test_s3_transport() -> None:
    own = S3Transport(ca_bundle="/own.pem", https_proxy="http://own:3128")
    assert own.over(None) is own
    insecure = own.over(Transport(https_proxy="http://probe:3128", verify_tls=False))
    assert insecure == S3Transport("/own.pem", "http://probe:3128", verify=False)
    assert insecure.botocore_verify() is False
    assert own.botocore_verify() == "/own.pem"
    assert S3Transport().botocore_verify() is None  # the SDK's default trust
    config = client_config(
        5, path_style=True, https_proxy="https://proxy:3128", proxy_ca_bundle="/own.pem"
    )
    assert config["proxies"] == {"https": "https://proxy:3128"}
    assert config["proxies_config"] == {"proxy_ca_bundle": "/own.pem"}
    assert "proxies_config" not in client_config(5, path_style=True, https_proxy="http://p:1")


def test_azure_client_options() -> None:
    kwargs = azure.ClientOptions(5, ca_bundle="/ca.pem", https_proxy="http://p:1").as_kwargs()
    assert kwargs["connection_verify"] == "/ca.pem"
    assert kwargs["proxies"] == {"https": "http://p:1"}
    assert azure.ClientOptions(5).as_kwargs()["connection_verify"] is True
    insecure = azure.ClientOptions(5, ca_bundle="/ca.pem", verify=False).as_kwargs()
    assert insecure["connection_verify"] is False


def test_oss_client_options() -> None:
    own = oss.ClientOptions(ca_bundle="/own.pem")
    assert own.over(None) is own
    assert own.over(Transport(https_proxy="http://p:1", verify_tls=False)) == oss.ClientOptions(
        "/own.pem", "http://p:1", verify=False
    )


class FakeSession:
    """What `HttpOptions.configure` touches of a `requests.Session`."""

    def __init__(self) -> None:
        self.verify: Any = True
        self.proxies: dict[str, str] = {}
        self.max_redirects = 30

    def merge_environment_settings(self, *args: Any) -> dict[str, Any]:
        return {"verify": "/from/REQUESTS_CA_BUNDLE", "proxies": {}}


@pytest.mark.parametrize(
    ("options", "verify"),
    [
        (gcs.HttpOptions(ca_bundle="/ca.pem"), "/ca.pem"),
        (gcs.HttpOptions(ca_bundle="/ca.pem", verify=False), False),
    ],
)
def test_gcs_sessions_keep_the_probes_trust_over_the_environment(
    options: gcs.HttpOptions, verify: Any
) -> None:
    session = options.configure(FakeSession())
    assert session.verify == verify
    assert session.merge_environment_settings("https://x", {}, False, None, None)["verify"] == (
        verify
    )
    assert session.max_redirects == 0


def test_gcs_without_options_leaves_the_environment_alone() -> None:
    session = gcs.HttpOptions().configure(FakeSession())
    assert session.verify is True
    assert session.merge_environment_settings()["verify"] == "/from/REQUESTS_CA_BUNDLE"
    over = gcs.HttpOptions(https_proxy="http://own:1").over(Transport(verify_tls=False))
    assert over == gcs.HttpOptions(None, "http://own:1", verify=False)


def test_a_temporary_directory_that_cannot_be_written_says_so(private_tmp: Path) -> None:
    os.chmod(private_tmp, 0o500)
    try:
        if os.access(private_tmp, os.W_OK):  # root ignores the mode: take a file's place instead
            os.chmod(private_tmp, 0o700)
            (private_tmp / CA_FOLDER_NAME).write_text("not a folder")
        with pytest.raises(ProbeFailedError, match="could not be written") as caught:
            ca_bundle_file(certificate_pem())
        assert str(private_tmp) not in caught.value.message
    finally:
        os.chmod(private_tmp, 0o700)
