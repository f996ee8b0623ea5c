"""What one lint run found, and the three ways to print it: text, JSON and JUnit XML.

Text is one finding a line, `FILE:LINE:COL: NAMESPACE/NAME: FIELD: MESSAGE` (a warning
says `warning:` before the field). JSON is one object with `findings`, `objects` and
`summary`. JUnit XML has one testsuite per file, one testcase per object (skipped ones
marked so) and a failure per error; warnings go to the testcase's system-out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["Finding", "ObjectResult", "Report", "render_json", "render_junit", "summary_line"]

_FILE_CASE = "(file)"  # the JUnit testcase of findings that belong to no object


@dataclass(frozen=True)
class Finding:
    """One finding at a place in a file; `line` 0 for the whole input (an empty one)."""

    source: str
    line: int
    column: int
    namespace: str | None
    name: str | None
    field: str
    message: str
    warning: bool = False

    @property
    def object(self) -> str | None:
        """`namespace/name`, or `name` when the manifest leaves the namespace to `apply -n`."""
        if self.name is None and self.namespace is None:
            return None
        name = self.name if self.name is not None else "<no name>"
        return f"{self.namespace}/{name}" if self.namespace else name

    def __str__(self) -> str:
        parts = [self.source]
        if self.line:
            parts += [str(self.line), str(self.column)]
        where = ":".join(parts) + ":"
        level = " warning:" if self.warning else ""
        obj = f" {self.object}:" if self.object is not None else ""
        field_ = f" {self.field}:" if self.field else ""
        return f"{where}{obj}{level}{field_} {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "line": self.line,
            "column": self.column,
            "namespace": self.namespace,
            "name": self.name,
            "field": self.field,
            "message": self.message,
            "severity": "warning" if self.warning else "error",
        }


@dataclass
class ObjectResult:
    """One Kubernetes object of the input: checked (a Destination) or skipped."""

    source: str
    line: int
    api_version: str
    kind: str
    namespace: str | None
    name: str | None
    skipped: bool = False
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(not f.warning for f in self.findings)

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "valid" if self.valid else "invalid"

    def label(self) -> str:
        name = Finding("", 0, 0, self.namespace, self.name, "", "").object or "<no name>"
        return f"{self.kind or '<no kind>'} {name}"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "line": self.line,
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "status": self.status,
        }


@dataclass
class Report:
    """Everything one run found. Under `strict`, a warning is recorded as an error."""

    strict: bool = False
    sources: list[str] = field(default_factory=list)
    documents: int = 0  # YAML documents that are not empty
    objects: list[ObjectResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding, obj: ObjectResult | None = None) -> None:
        if self.strict and finding.warning:
            finding = Finding(**{**finding.__dict__, "warning": False})
        self.findings.append(finding)
        if obj is not None:
            obj.findings.append(finding)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if not f.warning]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.warning]

    @property
    def destinations(self) -> int:
        """The objects checked: Destinations, and objects meant to be (a group typo)."""
        return sum(1 for o in self.objects if not o.skipped)

    def counts(self) -> dict[str, int]:
        checked = [o for o in self.objects if not o.skipped]
        return {
            "files": len(self.sources),
            "objects": len(self.objects),
            "checked": len(checked),
            "valid": sum(1 for o in checked if o.valid),
            "invalid": sum(1 for o in checked if not o.valid),
            "skipped": len(self.objects) - len(checked),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
        }


def summary_line(report: Report) -> str:
    """`--summary`, in the manner of kubeconform's -summary."""
    c = report.counts()
    return (
        f"Summary: {c['objects']} object(s) found in {c['files']} file(s) - "
        f"Checked: {c['checked']}, Valid: {c['valid']}, Invalid: {c['invalid']}, "
        f"Skipped: {c['skipped']}, Errors: {c['errors']}, Warnings: {c['warnings']}"
    )


def render_json(report: Report) -> str:
    """The report as one JSON document."""
    body = {
        "findings": [f.as_json() for f in report.findings],
        "objects": [o.as_json() for o in report.objects],
        "summary": report.counts(),
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


def _testcase(suite: ET.Element, source: str, name: str, findings: list[Finding]) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=source, name=name)
    for finding in findings:
        if not finding.warning:
            text = f"{finding.field}: {finding.message}" if finding.field else finding.message
            failure = ET.SubElement(case, "failure", message=text, type="error")
            failure.text = str(finding)
    warnings = [str(f) for f in findings if f.warning]
    if warnings:
        ET.SubElement(case, "system-out").text = "\n".join(warnings)
    return case


def render_junit(report: Report) -> str:
    """The report as JUnit XML: a testsuite per file, a testcase per object."""
    top = ET.Element("testsuites", name="destination-operator lint")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    # an empty input is a finding of a path with no file
    for source in dict.fromkeys([*report.sources, *(f.source for f in report.findings)]):
        suite = ET.SubElement(top, "testsuite", name=source)
        objects = [o for o in report.objects if o.source == source]
        in_objects = {id(f) for o in objects for f in o.findings}
        loose = [f for f in report.findings if f.source == source and id(f) not in in_objects]
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        if loose:
            _testcase(suite, source, _FILE_CASE, loose)
            counts["tests"] += 1
            counts["failures"] += any(not f.warning for f in loose)
        for obj in objects:
            case = _testcase(suite, source, f"{obj.label()} (line {obj.line})", obj.findings)
            counts["tests"] += 1
            if obj.skipped:
                ET.SubElement(case, "skipped", message=f"not checked: {obj.api_version} {obj.kind}")
                counts["skipped"] += 1
            counts["failures"] += not obj.valid
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("errors", "0")
    for key, value in totals.items():
        top.set(key, str(value))
    top.set("errors", "0")
    ET.indent(top)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode")
