"""What lint finds in one object: its identity (group, version, kind), its fields, and the
warnings for what cannot be known offline.

Each finding is a `Found`: a field path (from the object's root), a message that does
not repeat the field, and whether it is only a warning. `identify` says what an object
is; `destination_findings` checks a Destination; `secret_findings` looks at a Secret.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from destination_operator.api import API_VERSION, GROUP, KIND, VERSION, spec_problems
from destination_operator.api.rules import matches
from destination_operator.providers.registry import credential_keys

from .aws_regions import PARTITIONS
from .manifests import field_parts

__all__ = [
    "AWS_REGIONS",
    "Found",
    "Identity",
    "destination_findings",
    "destination_problems",
    "identify",
    "secret_findings",
    "suggest",
]

AWS_REGIONS = frozenset(region for regions in PARTITIONS.values() for region in regions)
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
# ObjectMeta's fields (k8s.io/apimachinery), as a manifest spells them
_METADATA = (
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)
_DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_UNKNOWN = "unknown field"
_LONGEST_WORD = 100  # no suggestion for a longer key or value: difflib is quadratic


@dataclass(frozen=True)
class Found:
    """One finding in one object: `field` (from the object's root) and a message."""

    field: str
    message: str
    warning: bool = False


class Identity(StrEnum):
    """What an object is to lint."""

    DESTINATION = "Destination"  # check it
    WRONG = "wrong"  # meant for our group, but its group, version or kind is wrong
    SECRET = "Secret"  # look for credential values
    OTHER = "other"  # an object of another group or kind: skipped
    NOT_AN_OBJECT = "not an object"  # no apiVersion or no kind: skipped


def shown(value: object) -> str:
    """A value of the user's, quoted, escaped and cut short: safe on one line."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:_LONGEST_WORD]
    return json.dumps(cut, ensure_ascii=False)[:-1] + ('..."' if len(text) > len(cut) else '"')


def suggest(word: str, choices: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The nearest of `choices` to `word`, ignoring case and spaces; None when none is near."""
    if len(word) > _LONGEST_WORD:
        return None
    by_form = {"".join(choice.split()).lower(): choice for choice in choices}
    form = "".join(word.split()).lower()
    found = difflib.get_close_matches(form, list(by_form), n=1, cutoff=cutoff)
    return by_form[found[0]] if found else None


def _did_you_mean(nearest: str | None) -> str:
    return f', did you mean "{nearest}"?' if nearest else ""


def identify(doc: Mapping[Any, Any]) -> tuple[Identity, list[Found]]:
    """What `doc` is; for a `WRONG` one, what is wrong with its apiVersion or kind."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind == "Secret" and api_version == "v1":
        return Identity.SECRET, []
    if not isinstance(api_version, str):
        if kind == KIND:
            return Identity.WRONG, [
                Found("apiVersion", f"Destination must use apiVersion {API_VERSION}")
            ]
        return Identity.NOT_AN_OBJECT, []
    if not isinstance(kind, str):
        return Identity.NOT_AN_OBJECT, []
    group, _, version = api_version.rpartition("/")
    if group != GROUP:
        near = suggest(group, [GROUP], cutoff=0.85) if group else None
        if near is None:
            return Identity.OTHER, []
        found = [
            Found("apiVersion", f"unknown API group {shown(group)}{_did_you_mean(API_VERSION)}")
        ]
        if kind != KIND:
            found.append(_wrong_kind(kind))
        return Identity.WRONG, found
    found = []
    if kind != KIND:
        found.append(_wrong_kind(kind))
    if version != VERSION:
        found.append(
            Found(
                "apiVersion",
                f"Destination must use apiVersion {API_VERSION} (the only version served; "
                f"{shown(version)} is not)",
            )
        )
    return (Identity.WRONG, found) if found else (Identity.DESTINATION, [])


def _wrong_kind(kind: str) -> Found:
    near = suggest(kind, [KIND])
    return Found("kind", f"unknown kind {shown(kind)} in {GROUP}{_did_you_mean(near)}")


def _check_metadata(metadata: Any) -> Iterator[tuple[str, str]]:
    if metadata is None:
        yield "metadata.name", "Required value"
        return
    if not isinstance(metadata, Mapping):
        yield "metadata", "metadata must be of type object"
        return
    name, generate = metadata.get("name"), metadata.get("generateName")
    if name is None and generate is None:
        yield "metadata.name", "Required value: name or generateName is required"
    elif name is not None:
        if not isinstance(name, str):
            yield "metadata.name", "metadata.name must be of type string"
        elif len(name) > 253 or not matches(name, _DNS_SUBDOMAIN):
            yield (
                "metadata.name",
                "must be a lowercase RFC 1123 subdomain: at most 253 lowercase letters, digits, "
                "'-' and '.', starting and ending with a letter or digit",
            )
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not matches(namespace, _DNS_LABEL)
    ):
        yield (
            "metadata.namespace",
            "must be a lowercase RFC 1123 label: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        )


def destination_problems(doc: Mapping[Any, Any]) -> Iterator[tuple[str, str]]:
    """(field, message) for every problem the API server would refuse (metadata and spec),
    with the messages of the models as they are."""
    for key in doc:
        if key not in _TOP_LEVEL:
            yield str(key), f'unknown field "{key}"'
    yield from _check_metadata(doc.get("metadata"))
    for problem in spec_problems(doc.get("spec"), root="spec"):
        yield problem.field, problem.message


def _unstuttered(field: str, message: str) -> str:
    """The message without the field it is about: the line names the field once."""
    if message.startswith(_UNKNOWN):
        return _UNKNOWN
    if message.startswith(field + " "):
        return message[len(field) + 1 :]
    return message


@functools.cache
def _schema() -> Mapping[str, Any]:
    """The CRD's schema (built from the models) for the field names of each object."""
    from .crdgen import build_crd

    root: Mapping[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def _known_fields(parent: str) -> list[str]:
    """The field names the CRD allows under `parent` ("" for the object's root)."""
    if parent == "":
        return list(_TOP_LEVEL)
    if parent == "metadata":
        return list(_METADATA)
    node: Any = _schema()
    for part in field_parts(parent):
        node = node.get("items") if isinstance(part, int) else node.get("properties", {}).get(part)
        if not isinstance(node, Mapping):
            return []
    return list(node.get("properties", {}))


def _at(doc: Any, parent: str) -> Any:
    for part in field_parts(parent) if parent else []:
        if isinstance(part, int):
            doc = doc[part] if isinstance(doc, list) and 0 <= part < len(doc) else None
        else:
            doc = doc.get(part) if isinstance(doc, Mapping) else None
    return doc


def _unknown_metadata_fields(doc: Mapping[Any, Any]) -> Iterator[tuple[str, str]]:
    metadata = doc.get("metadata")
    if isinstance(metadata, Mapping):
        for key in metadata:
            if key not in _METADATA:
                yield f"metadata.{key}", _UNKNOWN


def destination_findings(doc: Mapping[Any, Any]) -> list[Found]:
    """Every finding of one Destination: the API server's refusals, each named once, an
    unknown field with the nearest known one (and not also the known one as missing), an
    unknown metadata field and an AWS region lint does not know as warnings."""
    problems = list(destination_problems(doc))
    metadata_fields = list(_unknown_metadata_fields(doc))
    found: list[Found] = []
    covered: set[str] = set()
    for where, message in problems + metadata_fields:
        if not message.startswith(_UNKNOWN):
            continue
        parent, _, key = where.rpartition(".")
        near = suggest(key, _known_fields(parent))
        siblings = _at(doc, parent)
        if near is not None and isinstance(siblings, Mapping) and near not in siblings:
            covered.add(f"{parent}.{near}" if parent else near)
        found.append(
            Found(where, _UNKNOWN + _did_you_mean(near), warning=where.startswith("metadata."))
        )
    errors = [
        Found(where, _unstuttered(where, message))
        for where, message in problems
        if not message.startswith(_UNKNOWN) and where not in covered
    ]
    wrong = {f.field for f in errors}
    return errors + found + [f for f in _region_findings(doc) if f.field not in wrong]


def _looks_like_region(label: str) -> bool:
    """`eu-central-1`, `us-gov-west-1`: lowercase words and a number, joined by '-'."""
    words = label.split("-")
    return (
        len(words) >= 3
        and words[-1].isdigit()
        and len(words[-1]) <= 2
        and all(w.isascii() and w.isalpha() and w.islower() for w in words[:-1])
    )


def _aws_host_region(endpoint: str) -> str | None:
    """The region an AWS endpoint names (`https://s3.eu-west-1.amazonaws.com`), if any."""
    if len(endpoint) > 512:
        return None
    try:
        host = urlsplit(endpoint).hostname or ""
    except ValueError:
        return None
    if not host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return None
    for label in host.split(".")[:-2]:
        for candidate in (label, label.removeprefix("s3-")):
            if _looks_like_region(candidate):
                return candidate
    return None


def _aws_regions_named(spec: Mapping[Any, Any]) -> Iterator[tuple[str, str]]:
    amazon, compatible = spec.get("amazonS3"), spec.get("s3Compatible")
    if isinstance(amazon, Mapping) and isinstance(amazon.get("region"), str):
        yield "spec.amazonS3.region", amazon["region"]
    if isinstance(compatible, Mapping) and isinstance(compatible.get("endpoint"), str):
        region = _aws_host_region(compatible["endpoint"])
        if region is not None:
            yield "spec.s3Compatible.endpoint", region
            if isinstance(compatible.get("region"), str):
                yield "spec.s3Compatible.region", compatible["region"]


def _region_findings(doc: Mapping[Any, Any]) -> Iterator[Found]:
    """A warning for each AWS region lint does not know, naming the nearest one it does."""
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return
    for where, region in _aws_regions_named(spec):
        if region in AWS_REGIONS or len(region) > 64:
            continue
        nearest = difflib.get_close_matches(region, sorted(AWS_REGIONS), n=1, cutoff=0)
        yield Found(
            where,
            f"unknown AWS region {shown(region)}{_did_you_mean(nearest[0] if nearest else None)} "
            "(lint knows the regions of its release; a newer region is fine)",
            warning=True,
        )


def secret_findings(doc: Mapping[Any, Any]) -> Iterator[Found]:
    """A warning for a Secret that holds credential values (naming the keys, never a value)."""
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    label = f"Secret {name}" if isinstance(name, str) and len(name) <= 253 else "this Secret"
    for section in ("stringData", "data"):
        values = doc.get(section)
        if not isinstance(values, Mapping):
            continue
        keys = sorted(str(k) for k, v in values.items() if k in credential_keys() and v)
        if keys:
            yield Found(
                section,
                f"{label} holds credential values in cleartext ({', '.join(keys)}); keep real "
                "credentials out of manifests: create the Secret out of band, or use External "
                "Secrets, Sealed Secrets or SOPS",
                warning=True,
            )
