"""Admission rules written once: CEL for the API server, Python for the models.

Every rule the CRD enforces with `x-kubernetes-validations` is a `Rule` (or a
`TransitionRule` for updates) defined next to the model it guards. The same
object carries the CEL expression that `crdgen` writes into the CRD, the
Python predicate the models run, and the one message both report. The
differential test (tests/cluster/test_differential*.py) checks that the two
halves agree on generated input.

Two ways to attach rules:

* to a string field: `Annotated[str, Field(...), Checks(rule, ...)]` — in CEL
  `self` is the string; the Python check receives the string;
* to a model: `cel_rules: ClassVar[tuple[Rule, ...]]` on a `RuleModel`
  subclass — in CEL `self` is the object; the Python check receives the model.
  `field_path` (a CEL `fieldPath`, relative to the model) says which field
  the error is reported on.

Regular expressions are written in the common subset of RE2 (what CEL's
`matches` uses) and Python's `re`: no backslashes (character classes such as
`[.]` instead of `\\.`), no look-around, ASCII ranges only, and `$` only at the
very end. `matches` is a search, so anchored rules say `^...$`; in Python the
final `$` becomes `\\Z`, because Python's `$` also matches before a trailing
newline and RE2's does not.

The builders at the end (`pattern_rule`, `immutable`, `immutable_optional`,
`not_ip`, `no_double_dot`, `endpoint_rules`) make the rules that the spec and
several member blocks share; a rule only one model or one family uses is
written beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "DNS_LABEL",
    "ENDPOINT_PATTERN",
    "HOST",
    "RULE_ERROR",
    "AnyRule",
    "Checks",
    "FieldReason",
    "Rule",
    "RuleModel",
    "TransitionRule",
    "cel_string",
    "endpoint_rules",
    "immutable",
    "immutable_optional",
    "matches",
    "no_double_dot",
    "not_ip",
    "pattern_rule",
]

RULE_ERROR = "destination_rule"
"""The pydantic error type of a failed rule; its ctx holds `field_path`."""


class FieldReason(StrEnum):
    """The `reason` a CEL rule may report (the API server's field error types)."""

    FieldValueInvalid = "FieldValueInvalid"
    FieldValueRequired = "FieldValueRequired"
    FieldValueForbidden = "FieldValueForbidden"
    FieldValueDuplicate = "FieldValueDuplicate"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    if "\\" in pattern:
        raise ValueError(f"rule pattern {pattern!r} uses a backslash; use a character class")
    if "$" in pattern[:-1]:
        raise ValueError(f"rule pattern {pattern!r} may use '$' only at its end")
    if pattern.endswith("$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def matches(value: str, pattern: str) -> bool:
    """CEL's `value.matches(pattern)`: true when the pattern matches anywhere in value."""
    return _compiled(pattern).search(value) is not None


@dataclass(frozen=True)
class Rule:
    """One validation rule: `cel` for the API server, `check` for the models."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str = ""
    reason: FieldReason | None = None

    def as_cel(self) -> dict[str, str]:
        """The `x-kubernetes-validations` entry."""
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason.value
        return entry


@dataclass(frozen=True)
class TransitionRule:
    """A rule on updates (CEL `oldSelf`); `check(new, old)` must hold.

    The API server evaluates it only when the old object had this node too;
    `validate_update` in `spec` does the same.
    """

    cel: str
    message: str
    check: Callable[[Any, Any], bool]
    field_path: str = ""
    reason: FieldReason | None = None

    def as_cel(self) -> dict[str, str]:
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason.value
        return entry


AnyRule = Rule | TransitionRule


def _fail(failed: list[Rule]) -> PydanticCustomError:
    """One pydantic error for every rule that failed on a node (as CEL reports them all).

    ctx: `rule_message` and `field_path` of the first, `failures` of all as
    (field_path, message) pairs.
    """
    return PydanticCustomError(
        RULE_ERROR,
        "{rule_message}",
        {
            "rule_message": failed[0].message,
            "field_path": failed[0].field_path,
            "failures": tuple((r.field_path, r.message) for r in failed),
        },
    )


class Checks:
    """Annotation metadata: rules on one string field.

    Validation runs the Python checks after the field's own constraints (type,
    length) have passed; the JSON schema gets the CEL rules.
    """

    def __init__(self, *rules: AnyRule) -> None:
        self.rules = rules

    @property
    def value_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if isinstance(r, Rule))

    @property
    def transition_rules(self) -> tuple[TransitionRule, ...]:
        return tuple(r for r in self.rules if isinstance(r, TransitionRule))

    def _validate(self, value: Any) -> Any:
        failed = [rule for rule in self.value_rules if not rule.check(value)]
        if failed:
            raise _fail(failed)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        result = handler(schema)
        result["x-kubernetes-validations"] = [r.as_cel() for r in self.rules]
        return result


def _drop_nulls(value: Any) -> Any:
    """What the API server does before validating: null fields are removed.

    (A structural schema prunes `null` from every non-nullable field, then
    applies defaults; so `amazonS3: null` is the same as leaving it out.) Only
    this level: each nested model prunes its own input, and nothing walks
    into values that validation refuses anyway.
    """
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


class RuleModel(BaseModel):
    """Base of the API models: camelCase on the wire, strict types, rules attached.

    * Attributes are snake_case; the Kubernetes JSON uses their camelCase
      aliases (`alias_generator`), and `model_dump()` writes aliases.
    * `strict=True`: a string is never coerced from a number, nor a boolean
      from `"yes"`, exactly as the API server's schema validation refuses them.
    * `extra="forbid"`: an unknown field is an error, as with kubectl's (and
      `fieldValidation=Strict`) server-side field validation.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        strict=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )

    cel_rules: ClassVar[tuple[AnyRule, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _prune_nulls(cls, data: Any) -> Any:
        return _drop_nulls(data)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        failed = [r for r in type(self).cel_rules if isinstance(r, Rule) and not r.check(self)]
        if failed:
            raise _fail(failed)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        result = handler(schema)
        target = handler.resolve_ref_schema(result)
        if cls.cel_rules:
            target["x-kubernetes-validations"] = [r.as_cel() for r in cls.cel_rules]
        return result

    @classmethod
    def field_transition_rules(cls) -> Iterator[tuple[str, TransitionRule]]:
        """(attribute, rule) for every transition rule on a field of this model."""
        for name, info in cls.model_fields.items():
            for meta in info.metadata:
                if isinstance(meta, Checks):
                    for rule in meta.transition_rules:
                        yield name, rule


# --- rule builders shared by the spec and its member blocks ------------------


HOST = "[A-Za-z0-9]([-.A-Za-z0-9]*[A-Za-z0-9])?(:[0-9]{1,5})?"
"""A host name or IPv4 address and an optional :port (unanchored, for URL patterns)."""

DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
"""An RFC 1123 label (unanchored)."""


def cel_string(pattern: str) -> str:
    """`pattern` as a CEL single-quoted string literal."""
    if "'" in pattern:
        raise ValueError(f"pattern {pattern!r} cannot be a CEL single-quoted string")
    return f"'{pattern}'"


def pattern_rule(path: str, pattern: str, allowed: str) -> Rule:
    """`self.matches(pattern)` on a string; the message is `<path> <allowed>`."""

    def check(value: str) -> bool:
        return matches(value, pattern)

    return Rule(
        cel=f"self.matches({cel_string(pattern)})", message=f"{path} {allowed}", check=check
    )


def immutable(path: str, what: str = "where the Destination writes") -> TransitionRule:
    """`self == oldSelf` on a required field."""

    def check(new: Any, old: Any) -> bool:
        return bool(new == old)

    return TransitionRule(
        cel="self == oldSelf",
        message=(
            f"{path} is immutable: it fixes {what}; "
            "create a new Destination to write somewhere else"
        ),
        check=check,
    )


def immutable_optional(path: str, attr: str, alias: str) -> TransitionRule:
    """An optional field of a member block may be neither added, removed nor changed."""

    def check(new: Any, old: Any) -> bool:
        return bool(getattr(new, attr) == getattr(old, attr))

    return TransitionRule(
        cel=(
            f"has(self.{alias}) == has(oldSelf.{alias}) && "
            f"(!has(self.{alias}) || self.{alias} == oldSelf.{alias})"
        ),
        message=(
            f"{path} is immutable (it may be neither added, removed nor changed): it fixes "
            "where the Destination writes; create a new Destination to write somewhere else"
        ),
        check=check,
        field_path=f".{alias}",
    )


_IPV4_LIKE = "^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$"


def not_ip(path: str) -> Rule:
    """The string is not formatted as an IPv4 address."""

    def check(value: str) -> bool:
        return not matches(value, _IPV4_LIKE)

    return Rule(
        cel=f"!self.matches({cel_string(_IPV4_LIKE)})",
        message=f"{path} must not be formatted as an IP address (such as 192.168.5.4)",
        check=check,
    )


def no_double_dot(path: str, what: str = "two adjacent periods ('..')") -> Rule:
    """The string does not contain `..`."""

    def check(value: str) -> bool:
        return ".." not in value

    return Rule(cel="!self.contains('..')", message=f"{path} must not contain {what}", check=check)


ENDPOINT_PATTERN = f"^https?://{HOST}(/[-A-Za-z0-9._~%/]*)?$"
_ENDPOINT_ALLOWED = (
    "must be an http:// or https:// URL: a host name or IPv4 address, an optional :port and "
    "an optional path (letters, digits, '-', '.', '_', '~', '%', '/'); no user:password@, "
    "query or fragment"
)


def endpoint_rules(path: str) -> tuple[Rule, ...]:
    """A service endpoint the author chose: a URL without user:password@, query or fragment."""
    return (pattern_rule(path, ENDPOINT_PATTERN, _ENDPOINT_ALLOWED),)
