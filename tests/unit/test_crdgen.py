"""The CRD is generated from the models: deterministic, fresh, structural, self-describing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from destination_operator.api.rules import Checks, Rule, RuleModel, TransitionRule
from destination_operator.api.spec import DestinationSpec, DestinationType
from destination_operator.api.status import DestinationStatus
from destination_operator.tools import crdgen

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "destinations.destinations.io.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crdgen.build_crd()


def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return only  # type: ignore[no-any-return]


def schemas(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from schemas(sub, f"{path}.{name}")
    if "items" in node:
        yield from schemas(node["items"], f"{path}[]")


def test_output_is_deterministic() -> None:
    assert crdgen.render() == crdgen.render()


def test_committed_crd_is_fresh() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == crdgen.render(), "run `make crds`"


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "crd.yaml"
    cmd = [sys.executable, "-m", "destination_operator.tools.crdgen"]
    printed = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    subprocess.run([*cmd, "--write", str(out)], check=True)
    assert printed == out.read_text(encoding="utf-8") == crdgen.render()


def test_names_are_the_fixed_ones(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "destinations.destinations.io"
    spec = crd["spec"]
    assert spec["group"] == "destinations.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "Destination"
    assert spec["names"]["plural"] == "destinations"
    assert spec["names"]["shortNames"] == ["dst"]
    assert spec["names"]["categories"] == ["destinations"]
    v = version(crd)
    assert (v["name"], v["served"], v["storage"]) == ("v1alpha1", True, True)
    assert v["subresources"] == {"status": {}}


def test_printer_columns_and_selectable_fields(crd: dict[str, Any]) -> None:
    columns = {c["name"].upper(): c for c in version(crd)["additionalPrinterColumns"]}
    assert list(columns) == [
        "READY",
        "TYPE",
        "TARGET",
        "VERIFIED",
        "REASON",
        "ARCHIVED",
        "LAST VERIFIED",
        "NEXT VERIFICATION",
        "EXPIRY",
        "AGE",
    ]
    assert columns["READY"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["NEXT VERIFICATION"]["jsonPath"] == ".status.nextVerificationTime"
    # a date column prints a future time as "<invalid>": the timestamp is printed as it is
    assert columns["NEXT VERIFICATION"]["type"] == "string"
    assert columns["EXPIRY"]["jsonPath"] == ".status.credentialsExpiry"
    assert columns["EXPIRY"]["type"] == "string"  # mostly ahead, like the next verification
    wide = [name for name, c in columns.items() if c.get("priority")]
    assert wide == ["NEXT VERIFICATION", "EXPIRY"]
    assert columns["VERIFIED"]["jsonPath"] == '.status.conditions[?(@.type=="Verified")].status'
    assert columns["REASON"]["jsonPath"] == '.status.conditions[?(@.type=="Verified")].reason'
    assert columns["LAST VERIFIED"]["type"] == "date"
    assert [f["jsonPath"] for f in version(crd)["selectableFields"]] == [
        ".spec.type",
        ".spec.enabled",
        ".spec.archived",
    ]


def test_schema_is_structural_and_described(crd: dict[str, Any]) -> None:
    root = version(crd)["schema"]["openAPIV3Schema"]
    for path, node in schemas(root):
        assert "type" in node, path
        for forbidden in ("anyOf", "oneOf", "allOf", "$ref", "additionalProperties", "title"):
            assert forbidden not in node, f"{path}: {forbidden}"
        if path != ".metadata":
            assert node.get("description"), f"{path} has no description"
        if node["type"] == "string" and "enum" not in node and path.startswith(".spec"):
            assert "maxLength" in node, f"{path}: unbounded strings make CEL costs unbounded"
        if node["type"] == "array":
            assert "maxItems" in node, path


def test_status_lists_every_status_field(crd: dict[str, Any]) -> None:
    status = version(crd)["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert (
        set(status["properties"])
        == {f.alias for f in DestinationStatus.model_fields.values()}
        == {
            "observedGeneration",
            "conditions",
            "target",
            "lastVerifiedTime",
            "nextVerificationTime",
            "lastProbe",
            "credentialsFingerprint",
            "credentialsExpiry",
            "lastHandledVerifyRequest",
            "archivedTime",
        }
    )
    assert "required" not in status
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    for path, node in schemas(status):
        assert "default" not in node, path


def test_secret_keys_are_explained(crd: dict[str, Any]) -> None:
    spec = version(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    described = {
        "amazonS3": ["accessKeyId", "secretAccessKey", "sessionToken"],
        "s3Compatible": ["accessKeyId", "secretAccessKey", "sessionToken"],
        "oracleCloudStorage": ["accessKeyId", "secretAccessKey"],
        "googleCloudStorage": ["serviceAccountJson", "hmacAccessKey", "hmacSecret"],
        "azureBlobStorage": ["accountKey", "sasToken", "connectionString"],
        "alibabaOSS": ["accessKeyId", "accessKeySecret"],
        "webhook": ["verificationToken", "bearerToken"],
    }
    for member, keys in described.items():
        for key in keys:
            assert key in spec[member]["description"], (member, key)
    name = spec["credentials"]["properties"]["secretRef"]["properties"]["name"]["description"]
    for keys in described.values():
        for key in keys:
            assert key in name


def model_rules(model: type[RuleModel], path: str) -> Iterator[tuple[str, Rule | TransitionRule]]:
    for rule in model.cel_rules:
        yield path, rule
    for info in model.model_fields.values():
        field_path = f"{path}.{info.alias}"
        for meta in info.metadata:
            if isinstance(meta, Checks):
                for rule in meta.rules:
                    yield field_path, rule
        annotation = info.annotation
        for arg in getattr(annotation, "__args__", (annotation,)):
            for meta in getattr(arg, "__metadata__", ()):
                if isinstance(meta, Checks):
                    for rule in meta.rules:
                        yield field_path, rule
            if isinstance(arg, type) and issubclass(arg, RuleModel):
                yield from model_rules(arg, field_path)


def crd_rules(crd: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    root = version(crd)["schema"]["openAPIV3Schema"]
    for path, node in schemas(root):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule


def test_every_model_rule_is_in_the_crd_and_back(crd: dict[str, Any]) -> None:
    from_models = sorted(
        (path, rule.cel, rule.message) for path, rule in model_rules(DestinationSpec, ".spec")
    )
    from_crd = sorted((path, r["rule"], r["message"]) for path, r in crd_rules(crd))
    assert from_models == from_crd
    assert len(from_crd) > 60


def test_every_rule_message_names_its_field(crd: dict[str, Any]) -> None:
    for path, rule in crd_rules(crd):
        target = "spec" + path.removeprefix(".spec") + rule.get("fieldPath", "")
        assert rule["message"].startswith(target + " "), (target, rule["message"])


def test_union_rules_cover_every_type(crd: dict[str, Any]) -> None:
    spec = version(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    for kind in DestinationType:
        assert any(f"self.type != '{kind}'" in r for r in rules)
        assert any(f"self.type == '{kind}'" in r for r in rules)


def test_defaults_apply_through_verification(crd: dict[str, Any]) -> None:
    spec = version(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["verification"]["default"] == {}
    verification = spec["verification"]["properties"]
    assert verification["mode"]["default"] == "WriteDelete"
    # no server-side default: an unset interval or timeout lets the operator's settings apply
    # (--timeout, DESTINATION_OPERATOR_DEFAULT_INTERVAL_SECONDS)
    for name, default in (("interval", "1h"), ("timeout", "30s")):
        assert "default" not in verification[name], name
        assert "When unset, the operator's default applies" in verification[name]["description"]
        assert (
            f"({default} unless the operator is started with another)"
            in (verification[name]["description"])
        )
    assert spec["enabled"]["default"] is True
    assert spec["archived"]["default"] is False
    assert spec["environment"]["default"] == "Production"


def test_no_default_is_null(crd: dict[str, Any]) -> None:
    """An optional field has no default at all; `default: null` would not be structural."""
    root = version(crd)["schema"]["openAPIV3Schema"]
    for path, node in schemas(root):
        if "default" in node:
            assert node["default"] is not None, path
    assert "default: null" not in crdgen.render()


def test_interval_rule_allows_zero_or_at_least_a_minute(crd: dict[str, Any]) -> None:
    spec = version(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    interval = spec["properties"]["verification"]["properties"]["interval"]
    (rule,) = interval["x-kubernetes-validations"]
    grammar, bounds = rule["rule"].split(" && ", 1)
    assert grammar.startswith("self.matches(")  # garbage gets the message, not a CEL error
    assert bounds == "(duration(self) == duration('0s') || duration(self) >= duration('1m'))"
    assert rule["message"].startswith("spec.verification.interval must be 0s (never")


def test_yaml_is_plain(crd: dict[str, Any]) -> None:
    text = crdgen.render()
    assert text.startswith("# Generated by")
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == crd
