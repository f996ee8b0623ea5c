"""Operator settings: environment variables prefixed DESTINATION_OPERATOR_, or flags.

One place for every knob; `apply_to_kopf` hands the relevant ones to kopf at
startup (persistence, posting, watching, peering).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class OperatorSettings(BaseSettings):
    """What the operator can be told; every field is also a flag of `destination-operator run`."""

    model_config = SettingsConfigDict(env_prefix="DESTINATION_OPERATOR_", extra="ignore")

    namespaces: list[str] = Field(
        default_factory=list, description="a namespace to watch; none: every namespace"
    )
    kubeconfig: str | None = Field(
        default=None,
        description="kubeconfig file for kopf's watches and the operator's own calls; unset: "
        "KUBECONFIG, else the pod's ServiceAccount, else ~/.kube/config",
    )
    context: str | None = Field(
        default=None,
        description="kubeconfig context to use; unset: the kubeconfig's current-context",
    )
    probe_concurrency: int = Field(default=8, ge=1, le=256, description="probes run at once")
    default_interval_seconds: float = Field(
        default=3600.0, ge=0, description="re-probe interval when a Destination sets none"
    )
    timeout_seconds: float = Field(
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
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")
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

    def apply_to_kopf(self, kopf_settings: Any) -> None:
        """Tune kopf for what it does here: watch, index Secrets, and hand events over.

        - Only event and index handlers are used, so kopf keeps no progress or
          diff-base state and adds no finalizer; both storages stay on
          annotations should that change.
        - No worker limit: with `@kopf.index` a limit deadlocks once objects
          outnumber workers, and each handler only queues a key in memory.
        - Kopf's own log records are not posted as Events.
        - Standalone: no peering objects to write (one replica, Recreate strategy).
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
