"""The narrow interface every storage backend implements, and what a probe reports.

A provider knows one `DestinationType`. It

1. documents the Secret keys it reads (`secret_keys`);
2. turns the Secret's data into credentials (`load_credentials`), raising
   `SecretKeyMissingError` that names the missing key, never a value, and
   reading every value that goes into a header (or a URL) through
   `header_value`, which refuses a line break or control character inside it
   (`SecretKeyInvalidError`) before any connection;
3. lists the URLs the Destination's author chose (`probe.endpoints`), so that the
   endpoint guard can check them before any connection is made (where data
   goes, the TARGET column, is the member block's `location()` in
   `api.backends`: formatting of the spec, no provider needed);
4. probes (`probe`): builds its SDK client with the probe's timeout and
   transport (`providers.transport`: CA bundle, proxy, TLS verification),
   writes a small object and, in `WriteDelete` mode, deletes it again, and
   reports each step. It is synchronous (the operator runs it in a worker thread)
   and reports failures as `ProbeResult.error`, already translated by
   `errors.translate` and scrubbed of the credentials.

The reconciler never imports an SDK: providers import theirs lazily, so an
operator built without an extra still starts and reports which extra is
missing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from destination_operator.api.spec import DestinationSpec, DestinationType, VerificationMode
from destination_operator.api.status import StepOutcome
from destination_operator.errors import DestinationError, SecretKeyInvalidError
from destination_operator.expiry import Expiry
from destination_operator.outcome import StepName, StepResult
from destination_operator.providers.transport import Transport

__all__ = [
    "PROBE_BODY",
    "PROBE_DIRECTORY",
    "ProbeResult",
    "Provider",
    "ReadsExpiry",
    "SecretKeys",
    "Stopwatch",
    "failed_write",
    "header_problem",
    "header_value",
    "probe_object_key",
    "write_then_delete",
]

PROBE_DIRECTORY = ".destination-operator-probe"
"""The folder, under the Destination's prefix, that holds probe objects."""

PROBE_BODY = (
    b"destination-operator verification probe.\n"
    b"This object is not data: it proves that the credentials can write here.\n"
    b"It is safe to delete.\n"
)
"""What a probe object contains (small, and says what it is)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def probe_object_key(rendered_prefix: str, token: str) -> str:
    """The probe object's key: `<prefix>.destination-operator-probe/<token>.txt`.

    `rendered_prefix` is `spec.pathPrefix` with its tokens rendered (it may be
    empty, end in `/`, or be a file-name prefix); `token` is usually the
    Destination's uid, so that repeated probes overwrite one object rather
    than leave many. Characters outside `[A-Za-z0-9._-]` in the token become
    `-`; an empty token becomes `probe`.
    """
    name = _UNSAFE.sub("-", token).strip("-.") or "probe"
    return f"{rendered_prefix}{PROBE_DIRECTORY}/{name}.txt"


# What `str.splitlines` splits at: a header value holding one is cut there, or folded.
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# The other controls: C0, DEL, C1. A tab is legal inside an HTTP header value, but no
# credential holds one (keys, tokens, signatures are base64, hex or URL text): one inside
# is a paste gone wrong, and it would be signed and sent as it is. So it is refused too.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def header_problem(value: str) -> str | None:
    """What makes `value` unfit for an HTTP header, in words ("contains a tab"); None if fit.

    Give it stripped: a newline at an end counts too. The words name the kind
    of character, never the character's place or its neighbours.
    """
    if _LINE_BREAK.search(value):
        return "contains a line break"
    if "\t" in value:
        return "contains a tab"
    if _CONTROL.search(value):
        return "contains a control character"
    return None


def header_value(data: Mapping[str, str], key: str, *, secret_name: str | None = None) -> str:
    """The Secret's value for `key` with its ends stripped ("" when absent or blank).

    The ends may hold whitespace: `kubectl create secret --from-file` keeps a
    file's last newline. Inside, a line break or control character raises
    `SecretKeyInvalidError`, naming the key and not the value: in a header it
    would end the header early or fold a line of its own into the request.
    """
    value = (data.get(key) or "").strip()
    problem = header_problem(value)
    if problem is not None:
        raise SecretKeyInvalidError(
            key, f"{problem} inside; only its ends may hold whitespace", secret_name=secret_name
        )
    return value


@dataclass(frozen=True)
class ProbeResult:
    """What a probe did: its steps and, when one failed, the translated error."""

    steps: tuple[StepResult, ...]
    error: DestinationError | None = None
    summary: str = ""  # the success message, when "wrote (and deleted) the probe object" is wrong

    @property
    def duration_ms(self) -> int:
        """The time the steps took, together."""
        return sum(s.duration_ms for s in self.steps)


@dataclass(frozen=True)
class SecretKeys:
    """The Secret keys a provider reads: `required` all of them, `optional` if present.

    `alternatives` lists sets of keys of which one complete set is needed
    (Azure: `accountKey` or `sasToken` or `connectionString`); it is for
    documentation and for providers that need it.
    """

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, ...], ...] = ()
    description: str = ""

    def names(self) -> frozenset[str]:
        """Every key the provider may read."""
        return frozenset(
            (*self.required, *self.optional, *(k for keys in self.alternatives for k in keys))
        )


@dataclass
class Stopwatch:
    """Milliseconds since it was made; for step durations."""

    started: float = field(default_factory=time.monotonic)

    def ms(self) -> int:
        """Elapsed whole milliseconds."""
        return int((time.monotonic() - self.started) * 1000)

    def remaining(self, budget_seconds: float) -> float:
        """Seconds left of `budget_seconds` counted from the start (never negative)."""
        return max(0.0, budget_seconds - (time.monotonic() - self.started))


Step = Callable[[], "StepResult | DestinationError"]
"""One step of a probe: its result, or the error that failed it (never raised)."""


def failed_write(error: DestinationError, watch: Stopwatch) -> ProbeResult:
    """A probe whose write failed with `error` (the delete is skipped)."""
    failed = StepResult(StepName.Write, StepOutcome.Failed, watch.ms(), error.message)
    skipped = StepResult(StepName.Delete, StepOutcome.Skipped, 0, "the write failed")
    return ProbeResult((failed, skipped), error)


def write_then_delete(
    write: Step, delete: Step, mode: VerificationMode, watch: Stopwatch
) -> ProbeResult:
    """The probe of an object store: `write`, then in `WriteDelete` mode `delete`.

    A failed write skips the delete; mode `Write` leaves the object in place; a
    failed delete says the object was left and how write-only credentials pass.
    `watch` started with the probe: a failed step's duration is read from it.
    """
    written = write()
    if isinstance(written, DestinationError):
        return failed_write(written, watch)
    if mode != VerificationMode.WriteDelete:
        kept = StepResult(
            StepName.Delete, StepOutcome.Skipped, 0, "mode Write: the probe object is left in place"
        )
        return ProbeResult((written, kept))
    started = watch.ms()
    deleted = delete()
    if isinstance(deleted, DestinationError):
        deleted.add_detail(
            "the probe object was written but could not be deleted "
            "(for write-only credentials, use verification mode Write)"
        )
        failed = StepResult(
            StepName.Delete, StepOutcome.Failed, watch.ms() - started, deleted.message
        )
        return ProbeResult((written, failed), deleted)
    return ProbeResult((written, deleted))


@runtime_checkable
class Provider(Protocol):
    """A storage backend. `Credentials` are whatever `load_credentials` returns."""

    type: ClassVar[DestinationType]
    secret_keys: ClassVar[SecretKeys]

    def load_credentials(self, data: Mapping[str, str]) -> Any:
        """Credentials from the Secret's data (values decoded to text).

        Raises `SecretKeyMissingError` naming the first missing key.
        """
        ...

    def endpoints(self, spec: DestinationSpec) -> list[str]:
        """The URLs in `spec` that its author chose (for the endpoint guard); [] if none."""
        ...

    def probe(
        self,
        spec: DestinationSpec,
        credentials: Any,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        *,
        transport: Transport | None = None,
    ) -> ProbeResult:
        """Write (and in `WriteDelete` mode delete) `object_key`; never raises for a failed step.

        `transport` is this probe's (from the spec and the Secret); what it
        leaves unset, the provider's own settings decide. None: those alone.
        """
        ...


@runtime_checkable
class ReadsExpiry(Protocol):
    """A provider whose credentials can say when they expire, from their text alone (the
    `expiry` module's readers: a SAS token's `se`, a JWT's `exp`). Optional: a provider
    without it has no readable expiry. The probe reads the Secret's `caBundle` itself.

    Credentials the operator obtains and refreshes itself (workload identity) return none:
    their expiry is not the user's to act on, and refreshing them writes nothing.
    """

    def expiries(self, credentials: Any) -> Sequence[Expiry]:
        """When `credentials` (as `load_credentials` made them) expire; [] when unknown."""
        ...
