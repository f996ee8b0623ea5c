"""Statements of docs/providers/ that no other test proves, each named in the page it backs.

Small and offline: settings defaults, the probe object's size, how an Amazon S3
bucket is addressed, which Azure Secret key wins and which Secrets it refuses,
where GCS probes go and which key files they refuse, how an OSS session treats
the environment, how a webhook's answer is read, and how much of it is searched
for the echoed challenge (a real HTTP server on loopback, through
`probe.verify.verify`). Last, every test a provider page names must exist.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.api.status import Reason
from destination_operator.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    DestinationError,
    InvalidSpecError,
    ProbeFailedError,
)
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers import azure, oss
from destination_operator.providers.base import PROBE_BODY
from destination_operator.providers.gcs import (
    GOOGLE_TOKEN_URIS,
    GoogleCloudStorageProvider,
    ServiceAccountKeyError,
)
from destination_operator.providers.oss import AlibabaOSSProvider
from destination_operator.providers.s3 import AmazonS3Provider, S3Credentials, client_config
from destination_operator.providers.webhook import ECHO_READ_LIMIT, judge_answer
from destination_operator.settings import OperatorSettings

NOW = datetime.datetime(2026, 11, 25, 7, 0, tzinfo=datetime.UTC)


def test_retry_and_interval_defaults_are_the_documented_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Backoff from 5 s doubling to 5 minutes, up to 10 % interval jitter, 60 s Secret grace."""
    for key in list(os.environ):
        if key.startswith("DESTINATION_OPERATOR_"):
            monkeypatch.delenv(key)
    settings = OperatorSettings()
    assert settings.backoff_base_seconds == 5
    assert settings.backoff_cap_seconds == 300
    assert settings.interval_jitter == 0.1
    assert settings.secret_grace_seconds == 60


def test_the_probe_object_is_small_and_says_what_it_is() -> None:
    assert len(PROBE_BODY) < 200
    assert b"not data" in PROBE_BODY and b"safe to delete" in PROBE_BODY


def test_amazon_s3_puts_the_bucket_in_the_host_name() -> None:
    spec = parse_spec(
        {
            "type": "AmazonS3",
            "amazonS3": {"bucket": "acme-reports", "region": "eu-central-1"},
            "credentials": {"secretRef": {"name": "creds"}},
        }
    )
    target = AmazonS3Provider().target(spec)
    assert not target.path_style
    config = client_config(5, path_style=target.path_style)
    assert config["s3"] == {"addressing_style": "virtual"}


ACCOUNT_KEY = base64.b64encode(b"an account key of sixty-four bytes, or near enough").decode()
SAS = "sv=2025-01-05&sr=c&sp=cwd&sig=c2lnbmF0dXJl"
CONNECTION = f"AccountName=acme;AccountKey={ACCOUNT_KEY};BlobEndpoint=https://acme.example"


@pytest.mark.parametrize(
    ("data", "used"),
    [
        (
            {"accountKey": ACCOUNT_KEY, "sasToken": SAS, "connectionString": CONNECTION},
            "accountKey",
        ),
        ({"sasToken": SAS, "connectionString": CONNECTION}, "sasToken"),
        ({"accountKey": " \n", "connectionString": CONNECTION}, "connectionString"),
    ],
    ids=["all-three", "sas-and-connection-string", "empty-account-key"],
)
def test_azure_uses_the_first_key_present_in_order(data: dict[str, str], used: str) -> None:
    assert azure.load_credentials(data).source == used


URL = "https://hooks.example.com/in"


ANSWERS = [
    ("401", 401, {}, False, AuthenticationFailedError, "did not accept the verificationToken"),
    (
        "401-bearer-sent",
        401,
        {},
        True,
        AuthenticationFailedError,
        "did not accept the verificationToken or bearerToken",
    ),
    (
        "401-asks-for-a-bearer-token",
        401,
        {"WWW-Authenticate": 'Bearer realm="x"'},
        False,
        AuthenticationFailedError,
        "asks for a bearer token (Secret key bearerToken)",
    ),
    ("403", 403, {}, True, AccessDeniedError, "recognises the request but refuses it"),
    ("404", 404, {}, False, ProbeFailedError, "nothing receives at this URL"),
    ("410", 410, {}, False, ProbeFailedError, "nothing receives at this URL"),
    *[
        (str(code), code, {"Location": "/moved?sig=abc"}, False, ProbeFailedError, "redirects are")
        for code in (301, 302, 303, 307, 308)
    ],
    ("418", 418, {}, False, ProbeFailedError, "the receiver answered 418"),
    ("503", 503, {}, False, ProbeFailedError, "the receiver answered 503"),
]


@pytest.mark.parametrize(
    ("status", "headers", "bearer_sent", "error", "says"),
    [pytest.param(*answer[1:], id=answer[0]) for answer in ANSWERS],
)
def test_how_a_webhook_answer_is_read(
    status: int,
    headers: dict[str, str],
    bearer_sent: bool,
    error: type[DestinationError],
    says: str,
) -> None:
    with pytest.raises(DestinationError) as raised:
        judge_answer(status, "", headers, url=URL, echoed=False, bearer_sent=bearer_sent)
    assert type(raised.value) is error
    assert says in raised.value.message
    assert "sig=abc" not in raised.value.message


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_delivered(status: int) -> None:
    said = judge_answer(status, "OK", {}, url=URL, echoed=True, bearer_sent=False)
    assert said == f"the receiver answered {status} OK and echoed the challenge"


class _Echo(BaseHTTPRequestHandler):
    """Answers 200 with `padding` bytes, then the request's challenge; keeps what it got."""

    padding = 0
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        challenge = json.loads(body)["challenge"].encode()
        answer = b" " * self.padding + challenge
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: Any) -> None:
        """Quiet."""


@pytest.fixture
def echo_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def webhook_probe(server: ThreadingHTTPServer, secret: dict[str, bytes]) -> Outcome:
    spec = parse_spec(
        {
            "type": "Webhook",
            "environment": "Development",
            "webhook": {"url": f"http://127.0.0.1:{server.server_port}/hook"},
            "credentials": {"secretRef": {"name": "hook"}},
            "verification": {"timeout": "5s"},
        }
    )
    return verify(
        spec,
        secret,
        secret_uid="3c1e9a7b-2d4f-4b8e-9a61-5f0c2d7e8b14",
        object_key="reports/.destination-operator-probe/echo.txt",
        allow_private=True,
        now=NOW,
    )


def test_the_verification_request_says_who_sent_it_and_what_it_is(
    echo_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trimmed token in its header, the operator's User-Agent, the probe key in the body."""
    monkeypatch.setattr(_Echo, "received", [])
    outcome = webhook_probe(echo_server, {"verificationToken": b"  token-for-the-echo-test\n"})
    assert outcome.verified, outcome
    [(headers, body)] = _Echo.received
    assert headers["verification-token"] == "token-for-the-echo-test"
    assert headers["user-agent"] == "destination-operator"
    assert headers["content-type"] == "application/json"
    event = json.loads(body)
    assert event["type"] == "destinations.io/verification"
    assert event["probeKey"] == "reports/.destination-operator-probe/echo.txt"
    assert "not a delivery" in event["note"]
    assert b"token-for-the-echo-test" not in body


@pytest.mark.parametrize(
    ("padding", "echoed"),
    [(ECHO_READ_LIMIT - 36, True), (ECHO_READ_LIMIT - 35, False)],
    ids=["ends-at-byte-4096", "ends-at-byte-4097"],
)
def test_the_challenge_counts_only_within_the_first_4096_bytes(
    echo_server: ThreadingHTTPServer, padding: int, echoed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ECHO_READ_LIMIT == 4096
    monkeypatch.setattr(_Echo, "padding", padding)  # a UUID challenge is 36 bytes long
    outcome = webhook_probe(echo_server, {"verificationToken": b"token-for-the-echo-test"})
    assert outcome.reason == Reason.ProbeSucceeded, outcome
    write = outcome.steps[0].message
    assert write.endswith(
        "and echoed the challenge" if echoed else "(it did not echo the challenge)"
    )


GCS_SPEC = {
    "type": "GoogleCloudStorage",
    "googleCloudStorage": {"bucket": "acme-reports"},
    "credentials": {"secretRef": {"name": "creds"}},
}


def test_gcs_talks_to_google_only() -> None:
    """Both APIs at storage.googleapis.com (HMAC: path style, region auto), Google's token URIs."""
    provider = GoogleCloudStorageProvider()
    assert provider._api_endpoint == "https://storage.googleapis.com"
    hmac = provider._interoperability.connect_target(parse_spec(GCS_SPEC))
    assert (hmac.endpoint_url, hmac.region, hmac.path_style) == (
        "https://storage.googleapis.com",
        "auto",
        True,
    )
    assert {
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    } == GOOGLE_TOKEN_URIS


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ('["a", "list"]', "is not a JSON object"),
        ('{"type": "authorized_user", "client_email": "x", "private_key": "y"}', "not a service"),
    ],
    ids=["not-an-object", "a-user-credential"],
)
def test_gcs_refuses_a_key_file_that_is_no_service_account_key(document: str, says: str) -> None:
    with pytest.raises(ServiceAccountKeyError) as refused:
        GoogleCloudStorageProvider().load_credentials({"serviceAccountJson": document})
    assert refused.value.reason == Reason.SecretKeyMissing
    assert says in refused.value.message


def test_gcs_ignores_whitespace_around_hmac_keys() -> None:
    keys = GoogleCloudStorageProvider().load_credentials(
        {"hmacAccessKey": " GOOG1EXAMPLE\n", "hmacSecret": "secret-value\n"}
    )
    assert keys == S3Credentials("GOOG1EXAMPLE", "secret-value")


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [
        ({"sasToken": "sv=2025-01-05&sr=c&sp=cwd"}, AuthenticationFailedError, "no sig= part"),
        ({"connectionString": "AccountName"}, AuthenticationFailedError, "Name=value pairs"),
        (
            {"connectionString": "AccountName=acme;BlobEndpoint=https://acme.example"},
            AuthenticationFailedError,
            "neither AccountKey nor SharedAccessSignature",
        ),
        (
            {"connectionString": "UseDevelopmentStorage=true"},
            InvalidSpecError,
            "UseDevelopmentStorage",
        ),
    ],
    ids=["sas-without-sig", "not-name-value", "no-credential", "development-storage"],
)
def test_azure_refuses_an_unusable_secret_before_any_connection(
    data: dict[str, str], error: type[DestinationError], says: str
) -> None:
    with pytest.raises(error) as refused:
        azure.load_credentials(data)
    assert says in refused.value.message


def azure_spec(endpoint: str | None = None) -> DestinationSpec:
    member = {"storageAccountName": "acmereports", "containerName": "deliveries"}
    return parse_spec(
        {
            "type": "AzureBlobStorage",
            "azureBlobStorage": member if endpoint is None else {**member, "endpoint": endpoint},
            "credentials": {"secretRef": {"name": "creds"}},
        }
    )


PORTAL = f"DefaultEndpointsProtocol=https;AccountName=acmereports;AccountKey={ACCOUNT_KEY}"


def test_the_portals_connection_string_fits_a_spec_without_endpoint() -> None:
    public = azure.load_credentials(
        {"connectionString": f"{PORTAL};EndpointSuffix=core.windows.net"}
    )
    azure.check_location(azure.azure_target(azure_spec()), public)  # no error
    china = azure.load_credentials(
        {"connectionString": f"{PORTAL};EndpointSuffix=core.chinacloudapi.cn"}
    )
    with pytest.raises(InvalidSpecError, match="another blob endpoint"):
        azure.check_location(azure.azure_target(azure_spec()), china)
    sovereign = azure_spec("https://acmereports.blob.core.chinacloudapi.cn")
    azure.check_location(azure.azure_target(sovereign), china)  # no error


OSS_SPEC = {
    "type": "AlibabaOSS",
    "alibabaOSS": {"bucket": "acme-reports", "region": "oss-cn-hangzhou"},
    "credentials": {"secretRef": {"name": "creds"}},
}


def test_oss_ignores_whitespace_around_the_keys() -> None:
    keys = AlibabaOSSProvider().load_credentials(
        {"accessKeyId": " LTAI5tEXAMPLE\n", "accessKeySecret": "secret-value\n"}
    )
    assert keys.values() == ("LTAI5tEXAMPLE", "secret-value")


def test_an_oss_session_reads_nothing_from_the_environment_and_follows_no_redirect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proxy and CA bundle variables and `.netrc` are ignored; only the probe's transport counts."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nowhere/ca.pem")
    keys = AlibabaOSSProvider().load_credentials(
        {"accessKeyId": "LTAI5tEXAMPLE", "accessKeySecret": "secret-value"}
    )
    client = oss._Client(oss.oss_target(parse_spec(OSS_SPEC)), keys, oss.ClientOptions())
    try:
        http = client.session.session
        assert http.trust_env is False
        assert http.max_redirects == 0
        assert client.proxies is None
        settings = http.merge_environment_settings("https://x.example", {}, None, None, None)
        assert settings["proxies"] == {} and settings["verify"] is True
    finally:
        client.close()


ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs" / "providers").glob("*.md"))
FULL = re.compile(r"`(?:tests/)?((?:unit|docs|providers|cluster)/test_\w+\.py)(?:::([^`\s]+))?`")
SHORTHANDS = {  # page: (pattern of its short form, the node id it stands for)
    "amazon-s3.md": (
        r"`outcomes\[([^\]`]+)\]`",
        "providers/test_s3_aws_oracle.py::test_outcomes[{}-AmazonS3]",
    ),
    "oracle-cloud-storage.md": (
        r"`outcomes\[([^\]`]+)\]`",
        "providers/test_s3_aws_oracle.py::test_outcomes[{}-OracleCloudStorage]",
    ),
    "s3-compatible.md": (r"`s3::(test_\w+)`", "providers/test_s3_provider.py::{}"),
    "alibaba-oss.md": (r"`\[([a-z][\w-]*)\]`", "providers/test_oss_provider.py::test_probe[{}]"),
    "azure-blob-storage.md": (
        r"`\[([a-z][\w-]*)\]`",
        "providers/test_azure_provider.py::test_verify_against_azurite[{}]",
    ),
    "google-cloud-storage.md": (
        r"`\[([a-z][\w-]*)\]`",
        "providers/test_gcs_provider.py::test_probe_outcome[{}]",
    ),
    "webhook.md": (
        r"`\[([a-z][\w-]*)\]`",
        "providers/test_webhook_provider.py::test_webhook_probe[{}]",
    ),
}
PLACEHOLDER = re.compile(r"(::x|\[x(-\w+)?\])$")  # where a page explains its short form
ANSWERS_SHORTHAND = (
    r"`answer\[([^\]`]+)\]`",
    "docs/test_docs_providers.py::test_how_a_webhook_answer_is_read[{}]",
)


def named_tests(page: Path) -> set[str]:
    """Every test the page names, as `<path under tests/>[::<test>[<case>]]`."""
    text = page.read_text(encoding="utf-8")
    named = {m.group(1) + (f"::{m.group(2)}" if m.group(2) else "") for m in FULL.finditer(text)}
    shorthands = [
        SHORTHANDS.get(page.name),
        ANSWERS_SHORTHAND if page.name == "webhook.md" else None,
    ]
    for pattern, node in filter(None, shorthands):
        named |= {node.format(case) for case in re.findall(pattern, text)}
    return {name for name in named if not PLACEHOLDER.search(name)}


@pytest.fixture(scope="module")
def collected() -> set[str]:
    """The node ids pytest collects in each folder of tests/ a provider page names.

    One folder at a time, so that an error collecting one folder leaves the others' ids.
    """
    folders = sorted({name.split("/")[0] for page in PAGES for name in named_tests(page)})
    ids: set[str] = set()
    for folder in folders:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", f"tests/{folder}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        found = {line.removeprefix("tests/") for line in done.stdout.splitlines() if "::" in line}
        assert found, done.stdout + done.stderr
        ids |= found
    return ids | {node.split("::")[0] for node in ids} | {node.split("[")[0] for node in ids}


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_test_a_provider_page_names_exists(page: Path, collected: set[str]) -> None:
    missing = sorted(
        name
        for name in named_tests(page)
        if name not in collected
        # `*` may stand for part of a case id; brackets are literal
        and not any(fnmatch.fnmatchcase(node, name.replace("[", "[[]")) for node in collected)
    )
    assert missing == [], f"{page.name} names tests that do not exist: {missing}"
