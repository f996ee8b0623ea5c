"""The API server and the models must agree on every spec: accept both, or refuse both.

Hypothesis generates Destinations, valid and invalid alike (most fields drawn
from pools of valid values, edge cases and random text, plus wrong types,
nulls, unknown fields and extra member blocks). Each one goes to the real API
server as a server-side dry-run create with strict field validation, and
through the models (`lint.check_destination`, which is `spec_problems` plus the
metadata checks). A disagreement is a bug in the CRD or in the models.

A second test does the same for updates (the transition rules): a stored
Destination of each type, replaced by a generated spec (dry run), against
`validate_update`.

    DESTINATION_OPERATOR_DIFF_EXAMPLES=10000 pytest tests/cluster/test_differential.py
"""

from __future__ import annotations

import copy
import json
import os
import string
import time
from collections.abc import Callable
from typing import Any

import pytest
from dst import GROUP, PLURAL, VERSION, destination
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from destination_operator.api.spec import SpecError, parse_spec, validate_update
from destination_operator.tools.lint import check_destination
from harness import Cluster

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("DESTINATION_OPERATOR_DIFF_EXAMPLES", "1000"))
UPDATE_EXAMPLES = max(100, EXAMPLES // 4)

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# --- value pools ------------------------------------------------------------------

WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a", "bucket", "x"]), st.integers(0, 3), max_size=2),
)
"""Values of the wrong type (or null, which the API server prunes)."""

UNICODE = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True with probability 1/n (sampled_from draws uniformly; small integer ranges do not)."""
    return bool(draw(st.sampled_from(range(n))) == n - 1)  # hypothesis favours the first


def pick(
    valid: list[Any],
    invalid: list[Any] | None = None,
    alphabet: str | None = None,
    max_size: int = 70,
    extra: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[Any]:
    """Mostly (nine in ten) a valid value; else an edge case, random text, or a wrong type."""
    others: list[st.SearchStrategy[Any]] = []
    if invalid:
        others += [st.sampled_from(invalid)] * 2
    if alphabet:
        others.append(st.text(alphabet, max_size=max_size))
    if extra is not None:
        others.append(extra)
    others += [UNICODE, WEIRD]

    @st.composite
    def choose(draw: st.DrawFn) -> Any:
        if one_in(draw, 10):
            return draw(st.one_of(others))
        return draw(st.sampled_from(valid))

    return choose()


LOWER = string.ascii_lowercase + string.digits

S3_BUCKET = pick(
    ["example-bucket", "abc", "a.b.c", "my-bucket-01", "a" * 63, "1.2.3.4a", "bucket.example.com"],
    [
        "ab", "Abc", "-abc", "abc-", "a..b", "192.168.1.1", "xn--abc", "sthree-x",
        "amzn-s3-demo-x", "abc-s3alias", "abc--ol-s3", "abc.mrap", "abc--x-s3",
        "abc--table-s3", "a" * 64, "a_b", "", "abc.", "a" * 100_000,
    ],
    LOWER + ".-_A",
)  # fmt: skip
GCS_BUCKET = pick(
    ["example-bucket", "a_b.c", ".".join(["a" * 63] * 3), "a" * 63],
    [
        "goog-x", "my-google-x", "g00gle-a", "a" * 64, ".".join(["a" * 64, "b"]),
        "a." * 111 + "a", "10.0.0.1", "_ab", "ab_",
    ],
    LOWER + "._-G",
    max_size=230,
)  # fmt: skip
OSS_BUCKET = pick(["example-bucket", "abc", "a" * 63], ["a.b", "-ab", "ab-", "ab"], LOWER + "-.")
OCI_BUCKET = pick(["B", "Example_Bucket.1-x", "a" * 256], ["a/b", "a" * 257, ""], LOWER + "_.-/A")
AWS_REGION = pick(
    ["us-east-1", "eu-central-1", "us-gov-west-1", "ap-southeast-5", "cn-north-1"],
    ["US-EAST-1", "us-east", "useast1", "u-east-1", "us-east-1-", "a" * 33],
    LOWER + "-",
)
OCI_REGION = pick(["us-ashburn-1", "eu-frankfurt-1", "sa-saopaulo-1"], ["Ashburn", "us_ashburn_1"])
S3C_REGION = pick(["auto", "us-east-1", "Garage", "default.1"], ["us east", "-x", "", "a" * 65])
OSS_REGION = pick(
    ["oss-cn-hangzhou", "oss-me-east-1", "oss-ap-southeast-5", "oss-eu-west-1"],
    ["cn-hangzhou", "oss-cn-nowhere", "OSS-CN-HANGZHOU"],
)
ACCOUNT = pick(["abc", "account1", "a" * 24], ["ab", "a" * 25, "Account", "a-b"], LOWER + "-A")
CONTAINER = pick(
    ["abc", "a-b-c", "deliveries", "a" * 63], ["a--b", "-ab", "ab-", "AB", "a_b"], LOWER + "-"
)
NAMESPACE = pick(["ns", "examplens", "a-1"], ["NS", "-a", "a-", "a_b", "a" * 64], LOWER + "-_")
URL_TAIL = st.text(string.ascii_letters + string.digits + "-._~%/?=&#@:[] ü\n", max_size=30)
URLS = [
    "https://hooks.example.com/x",
    "https://h:8443/a?b=c&d=%20",
    "http://127.0.0.1:9000",
    "https://10.0.0.1/",
    "https://a-b.c.d/e%20f",
    "http://localhost:10000/devstoreaccount1",
    "https://minio.example.com",
]
BAD_URLS = [
    "ftp://x",
    "https://user:pw@h/",
    "https://h/a b",
    "https://",
    "HTTPS://h",
    "https://h_x/",
    "https://[::1]/",
    "h.example.com",
    "https://h/ü",
    "https://h\n",
    "https://h.example.com?x=1",
    "https://h.example.com/#frag",
    "https://-h/",
    "https://h:123456/",
]
URL = pick(
    URLS,
    BAD_URLS,
    extra=st.builds(
        "https://{}{}".format, st.sampled_from(["h", "h.io", "1.2.3.4", "h-"]), URL_TAIL
    ),
)
DURATIONS = ["1h", "30m", "0s", "0", "1h30m", "500ms", "1.5h", ".5s", "1\u00b5s", "1\u03bcs", "10m"]
BAD_DURATIONS = [
    "-1h", "+1h", "1d", "1 h", "", "h", "1e3s", "10", "-0", "1h-1m",
    "2562047h47m16.854775808s", "99999999999999999999h", "2562047h47m16.854775807s",
]  # fmt: skip
INTERVALS = [
    "1h", "30m", "0s", "0", "0h0m", "1h30m", "1.5h", "10m", "1m", "60s", "90s", "60000ms",
    "0.0000000001s",  # Go truncates it to 0ns: never periodically
    "2562047h47m16.854775807s",
]  # fmt: skip
BELOW_A_MINUTE = [
    "1ns", "500ms", ".5s", "1\u00b5s", "1\u03bcs", "1s", "59s", "59.999999999s", "0.99m",
    "59999999999ns", "0h0m59s",
]  # fmt: skip
INTERVAL = pick(INTERVALS, [*BAD_DURATIONS, *BELOW_A_MINUTE], "0123456789.hmsuµ-", max_size=8)
TIMEOUT = pick(
    [*DURATIONS, "600s", "599.999s", "9m59s"],
    [*BAD_DURATIONS, "10m0.000000001s", "11m", "1h"],
    "0123456789.hms",
    max_size=6,
)
TOKENS = ["%COLLECTION_ID%", "%COLLECTION_NAME%", "%RESULT_SET_ID%", "%DATE%"]
PREFIX = pick(
    ["", "exports/", "a/b/c", "%DATE%/", "date=%DATE%/x-", "".join(TOKENS), "x" * 256],
    ["/a", "a/../b", "..", "a//b", "%YEAR%", "%date%", "a b", "é/", "x" * 257, "%DATE", "a\\b"],
    extra=st.lists(st.sampled_from([*TOKENS, "a", "/", ".", "-", "%", "_", "="]), max_size=8).map(
        "".join
    ),
)
DISPLAY_NAME = pick(
    ["Reports", "abc", "x" * 63, "\U0001f680" * 63],
    ["ab", "x" * 64, "\U0001f680" * 64],
    extra=UNICODE,
)
SECRET_NAME = pick(
    ["credentials", "a", "a.b-c", "a" * 253], ["A", "a_b", "-a", "a.", "a" * 254, ""], LOWER + ".-_"
)
BOOL = pick([True, False], ["true", "yes", 1, 0])
TYPES = [
    "AmazonS3",
    "S3Compatible",
    "GoogleCloudStorage",
    "AzureBlobStorage",
    "AlibabaOSS",
    "OracleCloudStorage",
    "Webhook",
]
MEMBER_KEY = {
    "AmazonS3": "amazonS3",
    "S3Compatible": "s3Compatible",
    "GoogleCloudStorage": "googleCloudStorage",
    "AzureBlobStorage": "azureBlobStorage",
    "AlibabaOSS": "alibabaOSS",
    "OracleCloudStorage": "oracleCloudStorage",
    "Webhook": "webhook",
}


def block(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """A member block: usually well formed, sometimes missing a key or with an unknown one."""
    shaped = st.fixed_dictionaries(required, optional=optional)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        value = dict(draw(shaped))
        if one_in(draw, 20):
            roll = draw(st.sampled_from(range(3)))
            if roll == 0 and value:
                value.pop(draw(st.sampled_from(sorted(value))))
            elif roll == 1:
                value[draw(st.sampled_from(["extra", "Bucket", "bucket_name", "namespace"]))] = "x"
            else:
                return draw(WEIRD)
        return value

    return build()


MEMBERS: dict[str, st.SearchStrategy[Any]] = {
    "AmazonS3": block(
        {"bucket": S3_BUCKET, "region": AWS_REGION},
        {"serverSideEncryption": pick(["AES256", "aws:kms", "aws:kms:dsse"], ["kms", "aes256"])},
    ),
    "S3Compatible": block(
        {"endpoint": URL, "bucket": S3_BUCKET},
        {"region": S3C_REGION, "forcePathStyle": BOOL},
    ),
    "GoogleCloudStorage": block({"bucket": GCS_BUCKET}, {}),
    "AzureBlobStorage": block(
        {"storageAccountName": ACCOUNT, "containerName": CONTAINER},
        {"endpoint": URL, "product": pick(["Databricks"], ["databricks", "Snowflake"])},
    ),
    "AlibabaOSS": block({"bucket": OSS_BUCKET, "region": OSS_REGION}, {"endpoint": URL}),
    "OracleCloudStorage": block(
        {"bucket": OCI_BUCKET, "namespace": NAMESPACE, "region": OCI_REGION}, {}
    ),
    "Webhook": block({"url": URL}, {}),
}

VERIFICATION = block(
    {},
    {
        "interval": INTERVAL,
        "timeout": TIMEOUT,
        "mode": pick(["WriteDelete", "Write"], ["Delete", "writedelete"]),
    },
)


@st.composite
def credentials(draw: st.DrawFn) -> Any:
    if one_in(draw, 10):
        return draw(
            st.one_of(
                st.just({"secretRef": {"name": "c", "namespace": "other"}}),
                st.just({"secretRef": {}}),
                st.just({}),
                WEIRD,
            )
        )
    return {"secretRef": {"name": draw(SECRET_NAME)}}


@st.composite
def specs(draw: st.DrawFn, kind: str | None = None) -> Any:
    """A spec, valid or not."""
    kind = kind or draw(st.sampled_from(TYPES))
    if one_in(draw, 100):
        return draw(WEIRD)
    spec: dict[str, Any] = {}
    if not one_in(draw, 20):
        spec["type"] = kind
    elif draw(st.booleans()):
        spec["type"] = draw(st.one_of(st.sampled_from(["Dropbox", "amazons3", "S3", ""]), UNICODE))
    if not one_in(draw, 25):
        spec[MEMBER_KEY[kind]] = draw(MEMBERS[kind])
    if one_in(draw, 15):
        other = draw(st.sampled_from(TYPES))
        spec[MEMBER_KEY[other]] = draw(MEMBERS[other])
    if not one_in(draw, 30):
        spec["credentials"] = draw(credentials())
    optional = {
        "displayName": DISPLAY_NAME,
        "enabled": BOOL,
        "archived": BOOL,
        "environment": pick(
            ["Production", "Staging", "Development", "Development"], ["production", "Prod"]
        ),
        "pathPrefix": PREFIX,
        "verification": VERIFICATION,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            spec[key] = draw(strategy)
    if one_in(draw, 40):
        spec[draw(st.sampled_from(["pathprefix", "secretRef", "bucket", "status"]))] = "x"
    return spec


# --- the two sides ----------------------------------------------------------------


def server_says(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except client.ApiException as err:
        if err.status >= 500:
            raise
        try:
            return str(json.loads(err.body)["message"])
        except (TypeError, ValueError, KeyError):
            return f"HTTP {err.status}"
    return None


def describe(spec: Any) -> str:
    text = json.dumps(spec, ensure_ascii=False)
    return text if len(text) < 1500 else text[:1500] + "..."


class Tally:
    def __init__(self) -> None:
        self.accepted = 0
        self.refused = 0
        self.start = time.monotonic()

    def add(self, accepted: bool) -> None:
        if accepted:
            self.accepted += 1
        else:
            self.refused += 1

    def report(self, what: str) -> str:
        total = self.accepted + self.refused
        return (
            f"{what}: {total} cases ({self.accepted} accepted, {self.refused} refused) "
            f"in {time.monotonic() - self.start:.1f}s"
        )


def test_server_and_models_agree_on_create(
    cluster: Cluster, destination_crd: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api = client.CustomObjectsApi(cluster.api_client())
    tally = Tally()

    @SETTINGS
    @given(spec=specs())
    def check(spec: Any) -> None:
        body = destination("generated", spec)
        refused = server_says(
            lambda: api.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                copy.deepcopy(body),
                dry_run="All",
                field_validation="Strict",
            )
        )
        problems = check_destination(body)
        tally.add(refused is None)
        assert (refused is None) == (not problems), (
            f"disagreement on {describe(spec)}\n"
            f"  API server: {refused or 'accepted'}\n"
            f"  models:     {problems or 'accepted'}"
        )

    check()
    with capsys.disabled():
        print(f"\n{tally.report('differential create')}")
    assert tally.accepted + tally.refused >= EXAMPLES
    assert tally.accepted >= EXAMPLES // 10, "the generator should produce valid specs too"
    assert tally.refused >= EXAMPLES // 10


BASES: dict[str, dict[str, Any]] = {
    "AmazonS3": {"amazonS3": {"bucket": "example-bucket", "region": "us-east-1"}},
    "S3Compatible": {
        "s3Compatible": {"endpoint": "https://minio.example.com", "bucket": "abc", "region": "auto"}
    },
    "GoogleCloudStorage": {"googleCloudStorage": {"bucket": "example-bucket"}},
    "AzureBlobStorage": {
        "azureBlobStorage": {"storageAccountName": "abc", "containerName": "abc"},
    },
    "AlibabaOSS": {
        "alibabaOSS": {
            "bucket": "abc",
            "region": "oss-cn-hangzhou",
            "endpoint": "https://oss-cn-hangzhou.aliyuncs.com",
        }
    },
    "OracleCloudStorage": {
        "oracleCloudStorage": {"bucket": "abc", "namespace": "ns", "region": "us-ashburn-1"}
    },
    "Webhook": {"webhook": {"url": "https://hooks.example.com/x"}},
}

SMALL_CHANGES: dict[str, st.SearchStrategy[Any]] = {
    "bucket": st.sampled_from(["example-bucket", "abc", "other-bucket"]),
    "region": st.sampled_from(["us-east-1", "auto", "oss-cn-hangzhou", "oss-cn-beijing"]),
    "endpoint": st.sampled_from(
        ["https://minio.example.com", "https://oss-cn-hangzhou.aliyuncs.com", "https://x.io", None]
    ),
    "storageAccountName": st.sampled_from(["abc", "other"]),
    "containerName": st.sampled_from(["abc", "other"]),
    "namespace": st.sampled_from(["ns", "other"]),
    "url": st.sampled_from(["https://hooks.example.com/x", "https://moved.example.com/y"]),
    "forcePathStyle": st.booleans(),
    "product": st.sampled_from(["Databricks", None]),
}


@st.composite
def updates(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A stored Destination's type, and a new spec for it: often a small change of the base."""
    kind = draw(st.sampled_from(TYPES))
    if one_in(draw, 5):
        return kind, draw(specs(kind))
    spec: dict[str, Any] = {"type": kind, "credentials": {"secretRef": {"name": "c"}}}
    spec.update(copy.deepcopy(BASES[kind]))
    member = spec[MEMBER_KEY[kind]]
    for key in draw(st.sets(st.sampled_from(sorted(SMALL_CHANGES)), max_size=2)):
        value = draw(SMALL_CHANGES[key])
        if value is None:
            member.pop(key, None)
        else:
            member[key] = value
    if one_in(draw, 10):
        spec["type"] = draw(st.sampled_from(TYPES))
    for key, strategy in {"enabled": BOOL, "archived": BOOL, "pathPrefix": PREFIX}.items():
        if one_in(draw, 4):
            spec[key] = draw(strategy)
    return kind, spec


def test_server_and_models_agree_on_update(
    cluster: Cluster, destination_crd: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api = client.CustomObjectsApi(cluster.api_client())
    stored: dict[str, Any] = {}
    for kind in TYPES:
        base = {"type": kind, "credentials": {"secretRef": {"name": "c"}}, **BASES[kind]}
        name = kind.lower()
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, destination(name, base)
        )
        stored[kind] = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    tally = Tally()

    @settings(SETTINGS, max_examples=UPDATE_EXAMPLES)
    @given(change=updates())
    def check(change: tuple[str, dict[str, Any]]) -> None:
        kind, spec = change
        old = stored[kind]
        body = copy.deepcopy(old)
        body["spec"] = spec

        def replace() -> None:
            # The session's operator may be running and write the stored object's status:
            # replace the version stored now (the spec is what this test is about).
            current = api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, old["metadata"]["name"]
            )
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            api.replace_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                old["metadata"]["name"],
                body,
                dry_run="All",
                field_validation="Strict",
            )

        refused = server_says(replace)
        for _ in range(3):  # a status write landed between the read and the replace
            if refused is None or "the object has been modified" not in refused:
                break
            refused = server_says(replace)
        problems: list[Any] = list(check_destination(destination("generated", spec)))
        if not problems:
            try:
                validate_update(parse_spec(old["spec"]), parse_spec(spec))
            except SpecError as err:
                problems.append(str(err))
        tally.add(refused is None)
        assert (refused is None) == (not problems), (
            f"disagreement on updating {kind} to {describe(spec)}\n"
            f"  API server: {refused or 'accepted'}\n"
            f"  models:     {problems or 'accepted'}"
        )

    check()
    with capsys.disabled():
        print(f"\n{tally.report('differential update')}")
    assert tally.accepted >= UPDATE_EXAMPLES // 10
    assert tally.refused >= UPDATE_EXAMPLES // 10
