"""Operator settings: one name each, from which its flag, variable and chart value come.

The setting `probe_concurrency` is the flag `--probe-concurrency` of
`destination-operator run`, the environment variable
`DESTINATION_OPERATOR_PROBE_CONCURRENCY` and the chart value `probeConcurrency`;
`flag`, `env_var` and `chart_value` derive them, and nothing else spells them.
A chart value under one of `CHART_SECTIONS` is nested there: `health_port` is
`health.port`, beside the probes that use that port. A setting's older
spellings (`Naming`) are still read and warn once; `load` gathers the flags and
the environment and says every bad value in one line that names the flag or the
variable as it was written. `apply_to_kopf` hands the relevant settings to kopf
at startup (persistence, posting, watching, peering).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from .selectors import label_selector

ENV_PREFIX = "DESTINATION_OPERATOR_"
# Sections of the chart's values that hold a setting beside the values that go with it
# (health.port beside health.livenessProbe; metrics.port beside metrics.service; a cloud's
# endpoints beside its identity values: aws.stsEndpoint).
CHART_SECTIONS = ("health", "metrics", "aws", "gcp", "azure")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    """The levels of Python's logging, each a level the operator logs at."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True)
class Naming:
    """What a setting's name alone does not say: the spellings it had before (still read,
    each warned about once) and whether the chart has a value for it."""

    old_flags: tuple[str, ...] = ()
    old_chart_values: tuple[str, ...] = ()
    in_chart: bool = True


def _split(value: object) -> list[object]:
    """A list from a JSON list (`["a", "b"]`) or from comma-separated items (`a,b`)."""
    if not isinstance(value, str):
        return [value]
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"not a JSON list ({err.msg} at character {err.pos + 1}); "
                "write a JSON list or comma-separated names"
            ) from None
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return items
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_list(value: object) -> object:
    """A list setting's value from a variable or flags: JSON or comma-separated; a list of
    such strings (a repeated flag) is joined."""
    if isinstance(value, list | tuple):
        return [item for part in value for item in _split(part)]
    return _split(value)


def namespace_name(value: str) -> str:
    """A Kubernetes namespace name (an RFC 1123 label), as the chart's schema requires."""
    if len(value) > 63 or not NAMESPACE_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a namespace name (lower-case letters, digits and '-', at most 63)"
        )
    return value


def _optional_namespace(value: str | None) -> str | None:
    return namespace_name(value) if value else None


def _service_account_name(value: str | None) -> str | None:
    """A ServiceAccount name (an RFC 1123 subdomain), as the API server requires."""
    if value is None:
        return None
    labels = value.split(".")
    if len(value) > 253 or not all(NAMESPACE_NAME.fullmatch(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a ServiceAccount name (lower-case letters, digits, '-' and '.')"
        )
    return value


def _endpoint_url(value: str | None) -> str | None:
    """An http(s) URL of a token or storage service, without user, query or fragment."""
    if value is None:
        return None
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[-A-Za-z0-9._~%/]*)?", value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def _account_template(value: str | None) -> str | None:
    """An http(s) URL with `{account}` (the storage account's name) in its host or path."""
    if value is None:
        return None
    if value.count("{account}") != 1:
        raise ValueError(f"{value!r} must hold {{account}} once (the storage account's name)")
    _endpoint_url(value.replace("{account}", "account"))
    return value.rstrip("/")


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


NamespaceList = Annotated[
    list[Annotated[str, AfterValidator(namespace_name)]], NoDecode, BeforeValidator(comma_list)
]


class OperatorSettings(BaseSettings):
    """What the operator can be told; every field is also a flag of `destination-operator run`,
    a variable and (unless its `Naming` says otherwise) a value of the chart."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    namespaces: Annotated[
        NamespaceList, Naming(old_flags=("--namespace",), old_chart_values=("watchNamespaces",))
    ] = Field(default_factory=list, description="namespaces to watch; none: every namespace")
    kubeconfig: Annotated[str | None, Naming(in_chart=False)] = Field(
        default=None,
        description="kubeconfig file for kopf's watches and the operator's own calls; unset: "
        "KUBECONFIG, else the pod's ServiceAccount, else ~/.kube/config",
    )
    context: Annotated[str | None, Naming(in_chart=False)] = Field(
        default=None,
        description="kubeconfig context to use; unset: the kubeconfig's current-context",
    )
    probe_concurrency: int = Field(default=8, ge=1, le=256, description="probes run at once")
    default_interval_seconds: float = Field(
        default=3600.0, ge=0, description="re-probe interval when a Destination sets none"
    )
    timeout_seconds: Annotated[
        float, Naming(old_flags=("--timeout",), old_chart_values=("defaultTimeoutSeconds",))
    ] = Field(
        default=30.0,
        gt=0,
        le=600,
        description="bound on one probe, in seconds, when a Destination sets none",
    )
    allow_private_endpoints: bool = Field(
        default=False,
        description="let Destinations probe loopback and private addresses (tests, demos); "
        "link-local and metadata addresses stay refused",
    )
    log_format: LogFormat = Field(default=LogFormat.TEXT, description="text or json")
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = Field(
        default=LogLevel.INFO, description="the lowest level logged"
    )
    backoff_base_seconds: float = Field(
        default=5.0, gt=0, description="first retry after a failure"
    )
    backoff_cap_seconds: float = Field(default=300.0, gt=0, description="longest retry delay")
    interval_jitter: float = Field(
        default=0.1, ge=0, le=0.5, description="fraction of the interval added at random"
    )
    workers: int = Field(
        default=32, ge=1, le=512, description="Destinations processed at once (writes, probes)"
    )
    secret_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description="how long a missing Secret is waited for before the Destination is Stalled",
    )
    credentials_expiry_window: float = Field(
        default=1209600.0,
        ge=0,
        description="how long before a readable credentials expiry (a SAS token's se, a "
        "JWT's exp, a caBundle certificate's notAfter) CredentialsExpiring turns True, in "
        "seconds (1209600 = 14 days; 0: only once expired)",
    )
    stuck_after_seconds: float = Field(
        default=900.0,
        gt=0,
        description="health fails when queued Destinations see no progress for this long",
    )
    health_port: int = Field(
        default=8080, ge=0, le=65535, description="liveness endpoint /healthz; 0 = off"
    )
    metrics_port: int = Field(
        default=9090, ge=0, le=65535, description="Prometheus /metrics; 0 = off"
    )
    destination_selector: Annotated[str, AfterValidator(label_selector)] = Field(
        default="",
        description="a label selector: only the Destinations it matches (shard=a, "
        "!shard); empty: every Destination. Secrets are not filtered",
    )
    per_object_metrics: bool = Field(
        default=True,
        description="series per Destination (its namespace and name as labels); off for "
        "very large clusters: the counts by type, condition and reason stay",
    )

    list_chunk_size: int = Field(
        default=500,
        ge=0,
        le=10000,
        description="objects per page of the initial lists of Destinations and Secrets "
        "(the API's limit and continue); 0: one response for all Destinations, parsed at "
        "once; Secrets' metadata comes in pages of at most 250 either way",
    )
    initial_streaming: bool = Field(
        default=False,
        description="open the watch of Destinations with sendInitialEvents (the API's streaming "
        "list) instead of listing them first; needs the API server's WatchList feature gate (beta, "
        "on by default in 1.32 and 1.34): where it is off the watch is refused and the operator "
        "exits 1. Secrets are listed in pages either way",
    )

    # --- workload identity (identity/): who the operator may act as ---------------------------
    object_level_identity: bool = Field(
        default=False,
        description="let Destinations name a ServiceAccount of their namespace "
        "(spec.credentials.serviceAccountName) whose token the operator requests and exchanges; "
        "the chart grants create on serviceaccounts/token only when on",
    )
    operator_identity: bool = Field(
        default=False,
        description="let Destinations ask for the operator's own cloud identity "
        "(spec.credentials.operatorIdentity); off: refused before any exchange",
    )
    default_service_account: Annotated[str | None, AfterValidator(_service_account_name)] = Field(
        default=None,
        description="a ServiceAccount name: a Destination asking for the operator's identity "
        "gets this ServiceAccount of its own namespace instead (needs object_level_identity)",
    )
    # Token and storage endpoints for the clouds, one setting each: for tests, private
    # endpoints and sovereign clouds only, never read from a Destination. Unset: the SDK's
    # public endpoint.
    aws_sts_endpoint: Annotated[str | None, AfterValidator(_endpoint_url)] = Field(
        default=None, description="AWS STS URL for web-identity exchanges; unset: AWS's regional"
    )
    aws_s3_endpoint: Annotated[str | None, AfterValidator(_endpoint_url)] = Field(
        default=None, description="S3 URL for AmazonS3 Destinations (tests); unset: AWS's"
    )
    gcp_sts_endpoint: Annotated[str | None, AfterValidator(_endpoint_url)] = Field(
        default=None, description="Google STS token URL; unset: https://sts.googleapis.com/v1/token"
    )
    gcp_iamcredentials_endpoint: Annotated[str | None, AfterValidator(_endpoint_url)] = Field(
        default=None, description="IAM Credentials URL (impersonation); unset: Google's"
    )
    gcp_storage_endpoint: Annotated[str | None, AfterValidator(_endpoint_url)] = Field(
        default=None,
        description="Cloud Storage JSON API URL for GoogleCloudStorage Destinations (tests, "
        "private endpoints); unset: Google's",
    )
    gcp_workload_identity_provider: str | None = Field(
        default=None,
        description="projects/N/locations/global/workloadIdentityPools/P/providers/X, for "
        "ServiceAccounts without the destinations.io/gcp-workload-identity-provider annotation "
        "and for the operator's own Google identity",
    )
    azure_entra_endpoint: Annotated[str | None, AfterValidator(_endpoint_url)] = Field(
        default=None, description="Entra ID authority (https); unset: login.microsoftonline.com"
    )
    azure_blob_endpoint: Annotated[str | None, AfterValidator(_account_template)] = Field(
        default=None,
        description="blob endpoint of AzureBlobStorage Destinations that name none, with "
        "{account} for the storage account (https://{account}.blob.core.usgovcloudapi.net; "
        "tests: Azurite's https://host:port/{account}); unset: https://{account}.blob."
        "core.windows.net",
    )
    azure_tenant_id: str | None = Field(
        default=None,
        description="the tenant of ServiceAccounts without a tenant-id annotation",
    )
    identity_ca_bundle: str | None = Field(
        default=None,
        description="a CA file the TLS of the token services (Google's STS and IAM "
        "Credentials, Entra ID) and of the blob endpoint azure_blob_endpoint names is checked "
        "with (private endpoints, tests); unset: the system's CAs",
    )

    leader_elect: bool = Field(
        default=False,
        description="reconcile only while holding the Lease leader_election_id (replicas "
        "beyond one stand by, warm); the chart turns it on",
    )
    leader_election_namespace: Annotated[
        str | None, AfterValidator(_optional_namespace), Naming(in_chart=False)
    ] = Field(
        default=None,
        description="namespace of the Lease; unset: the pod's own (its ServiceAccount's)",
    )
    leader_election_id: str = Field(
        default="destination-operator",
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="name of the Lease the replicas elect their leader on",
    )
    leader_election_lease_duration: float = Field(
        default=15.0, gt=0, description="seconds a standby waits after the last renewal"
    )
    leader_election_renew_deadline: float = Field(
        default=10.0, gt=0, description="seconds the leader keeps trying to renew, then exits"
    )
    leader_election_retry_period: float = Field(
        default=2.0, gt=0, description="seconds between tries to acquire or renew"
    )

    def election_problems(self) -> list[str]:
        """What keeps leader election from starting, one line each (client-go's rules: the
        renew deadline ends before the Lease expires for others, and leaves room for tries;
        and the Lease's namespace must be known)."""
        if not self.leader_elect:
            return []
        lease, renew, retry, namespace = (
            flag(f"leader_election_{name}")
            for name in ("lease_duration", "renew_deadline", "retry_period", "namespace")
        )
        found = []
        if self.leader_election_lease_duration <= self.leader_election_renew_deadline:
            found.append(f"{lease} must be longer than {renew}")
        if self.leader_election_renew_deadline <= 1.2 * self.leader_election_retry_period:
            found.append(f"{renew} must be longer than 1.2 times {retry}")
        if not self.lease_namespace():
            found.append(
                f"leader election needs the Lease's namespace: set {namespace} "
                f"({env_var('leader_election_namespace')}); only in a pod is it the pod's own"
            )
        return found

    def lease_namespace(self) -> str | None:
        """The Lease's namespace: the setting, else the pod's own (from its ServiceAccount
        mount), else None."""
        if self.leader_election_namespace:
            return self.leader_election_namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
        except OSError:
            return None

    def apply_to_kopf(self, kopf_settings: Any) -> None:
        """Tune kopf for what it does here: watch Destinations and hand events over (Secrets
        are watched as metadata only by `engine.secretwatch`, not by kopf).

        - Only event handlers are used, so kopf keeps no progress or diff-base
          state and adds no finalizer; both storages stay on annotations should
          that change.
        - No worker limit: each handler only queues a key in memory.
        - Kopf's own log records are not posted as Events.
        - Standalone: no kopf peering; replicas elect a leader on a Lease instead
          (`engine.elector`, docs/design.md says why).
        - The initial lists come in pages of `list_chunk_size` (`limit`/`continue`):
          kopf handles each page and lets it go before it asks for the next, so a
          start over 10,000 Destinations never parses one 10,000-object answer.
          With `initial_streaming` kopf makes no list at all: the watch sends the
          stored Destinations as events, then a bookmark (`sendInitialEvents`).
        """
        import kopf

        kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="destinations.io"
        )
        kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="destinations.io", key="last-handled-configuration"
        )
        kopf_settings.posting.enabled = False
        kopf_settings.peering.standalone = True
        kopf_settings.watching.server_timeout = 300
        kopf_settings.watching.client_timeout = 330
        kopf_settings.watching.connect_timeout = 10
        kopf_settings.networking.request_timeout = 30
        kopf_settings.queueing.worker_limit = None
        kopf_settings.queueing.idle_timeout = 1.0
        kopf_settings.watching.chunk_size = self.list_chunk_size or None
        kopf_settings.watching.initial_streaming = self.initial_streaming


# --- names ------------------------------------------------------------------------------------


def setting_names() -> list[str]:
    """Every setting's name, in the model's order."""
    return list(OperatorSettings.model_fields)


def naming(name: str) -> Naming:
    """The `Naming` of one setting (the default one when its field has none)."""
    info = OperatorSettings.model_fields[name]
    return next((item for item in info.metadata if isinstance(item, Naming)), Naming())


def flag(name: str) -> str:
    """The `run` flag of one setting: its name in dashes (`stuck_after_seconds` ->
    `--stuck-after-seconds`)."""
    return "--" + name.replace("_", "-")


def env_var(name: str) -> str:
    """The environment variable of one setting: the prefix and its name in capitals."""
    return f"{ENV_PREFIX}{name.upper()}"


def _camel(words: list[str]) -> str:
    return words[0] + "".join(word.capitalize() for word in words[1:])


def chart_value(name: str) -> str | None:
    """The chart value of one setting, as a dotted path: its name in camelCase, nested under
    its first word when that is one of CHART_SECTIONS; None when the chart has none."""
    if not naming(name).in_chart:
        return None
    first, *rest = name.split("_")
    if first in CHART_SECTIONS and rest:
        return f"{first}.{_camel(rest)}"
    return _camel([first, *rest])


def field_info(name: str) -> FieldInfo:
    """The pydantic field of one setting."""
    return OperatorSettings.model_fields[name]


# --- loading, and saying what is wrong ---------------------------------------------------------


@dataclass(frozen=True)
class Given:
    """A value given on the command line: the flag as written and what followed it (a list for
    a repeatable flag)."""

    spelling: str
    value: Any


class SettingsError(Exception):
    """Bad settings: `lines` says each, one line apiece, naming its flag or variable."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class _Sources:
    flags: Mapping[str, Given]
    environ: Mapping[str, str]
    variables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # pydantic-settings reads variables without regard to case; so does the message
        for key in self.environ:
            self.variables.setdefault(key.upper(), key)

    def written(self, name: str) -> tuple[str, str]:
        """(where the value of `name` came from, as written; the value as written)."""
        given = self.flags.get(name)
        if given is not None:
            value = given.value
            shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            return given.spelling, shown
        key = self.variables.get(env_var(name), env_var(name))
        return key, self.environ.get(key, "")


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


PLAIN_MESSAGES = {
    "bool_parsing": "should be true or false",
    "bool_type": "should be true or false",
    "int_parsing": "should be a whole number",
    "int_from_float": "should be a whole number",
    "float_parsing": "should be a number",
}


def _problem(error: ErrorDetails) -> str:
    """pydantic's message in plain words: no 'Input', no 'Value error,'."""
    message = error["msg"]
    for prefix in ("Value error, ", "Input "):
        message = message.removeprefix(prefix)
    message = PLAIN_MESSAGES.get(error["type"], message)
    if error["type"] == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        message = f"should be one of {expected.replace(chr(39), '')}"
    return message


def _line(error: ErrorDetails, sources: _Sources) -> str:
    loc = error["loc"]
    name = str(loc[0]) if loc else ""
    if name not in OperatorSettings.model_fields:
        return f"settings: {_problem(error)}"
    where, value = sources.written(name)
    item = len(loc) > 1 and isinstance(loc[1], int)
    if where.startswith("--"):
        # a list flag may be repeated: the item at fault is what was written after it
        value = str(error["input"]) if item else value
        return f"{where} {_clip(value)!r}: {_problem(error)}"
    at = f" (item {int(loc[1]) + 1})" if item else ""
    return f"{where}={_clip(value)!r}{at}: {_problem(error)}"


def load(flags: Mapping[str, Given] | None = None) -> OperatorSettings:
    """The settings from the flags given (by setting name) over the DESTINATION_OPERATOR_*
    variables over the defaults; SettingsError with one line per bad value."""
    flags = flags or {}
    sources = _Sources(flags, os.environ)
    values = {name: given.value for name, given in flags.items()}
    try:
        return OperatorSettings(**values)
    except ValidationError as err:
        raise SettingsError([_line(error, sources) for error in err.errors()]) from None
    except SourceError as err:  # a variable the environment source itself cannot read
        raise SettingsError([str(err)]) from None
