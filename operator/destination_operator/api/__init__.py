"""The Destination API (destinations.io/v1alpha1) as pydantic models: no SDK, no I/O.

`spec` holds the user's half (with the admission rules the CRD enforces),
`status` the operator's half (conditions, reasons, the last probe).
"""

from .duration import DurationError, parse_duration
from .prefix import render_prefix
from .spec import (
    DestinationSpec,
    DestinationType,
    Environment,
    SpecError,
    Verification,
    VerificationMode,
    parse_spec,
    spec_problems,
    validate_update,
)
from .status import (
    Condition,
    ConditionStatus,
    ConditionType,
    DestinationStatus,
    Reason,
)

GROUP = "destinations.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Destination"
PLURAL = "destinations"
VERIFY_REQUESTED_AT = "destinations.io/verify-requested-at"

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERIFY_REQUESTED_AT",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "DestinationSpec",
    "DestinationStatus",
    "DestinationType",
    "DurationError",
    "Environment",
    "Reason",
    "SpecError",
    "Verification",
    "VerificationMode",
    "parse_duration",
    "parse_spec",
    "render_prefix",
    "spec_problems",
    "validate_update",
]
