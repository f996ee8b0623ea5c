"""`destination-operator lint`: check Destination manifests offline, with the CRD's own rules.

    destination-operator lint manifests/ overlays/prod/extra.yaml
    kustomize build overlays/prod | destination-operator lint -
    helm template my-release charts/x | destination-operator lint -o junit - > lint.xml

Every object of the `destinations.io` group in the given files (folders are
searched for *.yaml and *.yml; `-` or no path reads stdin) is checked: a
Destination against the API models, which carry the same rules as the CRD's
schema and CEL validations; any other kind or version of the group, or a group
spelt nearly like it, is an error with the nearest right spelling. Objects of
other groups are skipped and counted. Findings are printed one per line as

    FILE:LINE:COL: NAMESPACE/NAME: FIELD: MESSAGE

or as JSON or JUnit XML (`--output`, `reports`). Warnings are for what cannot be
known offline or does not belong in Git: an AWS region missing from the list
generated from botocore (`aws_regions`), a Secret holding credential values, an
unknown metadata field, an empty input. `--strict` makes every warning an error,
and a document that is not a Kubernetes object too. A folder's Helm charts (a
`Chart.yaml` beside `templates/`) are linted without their `templates/`, which
are Go templates, not YAML. The exit status is 0 when there is no error, 1 when
there is one, 2 when a path cannot be read or an option is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from .checks import (
    Identity,
    destination_findings,
    destination_problems,
    identify,
    secret_findings,
    shown,
)
from .manifests import Document, Malformed, documents, position
from .reports import Finding, ObjectResult, Report, render_json, render_junit, summary_line

__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "Finding",
    "Report",
    "add_arguments",
    "check_destination",
    "lint_text",
    "main",
    "run",
]

STDIN = "<stdin>"
DESCRIPTION = """\
Check Destination manifests offline against the CRD's rules (schema and CEL),
as the API server would."""
EPILOG = """\
output (--output text, the default):
  errors on stdout, one a line: FILE:LINE:COL: NAMESPACE/NAME: FIELD: MESSAGE
  (NAMESPACE/ only when the manifest sets one); warnings (FILE:LINE:COL:
  NAMESPACE/NAME: warning: FIELD: MESSAGE), notices and a summary on stderr.
  --output json: one JSON document on stdout (findings, objects, summary).
  --output junit: JUnit XML on stdout, a testsuite per file, a testcase per
  object, a failure per error (warnings in system-out).

what is checked:
  objects of the destinations.io group: a wrong kind or version, or a group
  spelt nearly like it (destination.io), is an error with a "did you mean";
  objects of other groups are skipped and counted (--summary). Secrets with
  credential values, unknown metadata fields and AWS regions that lint does not
  know (it knows botocore's, as of its release) are warnings. An input with no
  YAML document (an empty folder or stdin) is a warning even under -q.

--strict:
  every warning is an error, a document that is not a Kubernetes object (no
  apiVersion or kind; a chart's Chart.yaml and values files excepted) is an
  error, and so is an empty input.

Helm charts:
  in a folder, a chart's templates/ (a Chart.yaml beside it) is skipped with a
  notice: Go templates are not YAML until rendered. Lint a chart with:
    helm template <release> charts/x | destination-operator lint -

exit status:
  0 no error (warnings allowed unless --strict), 1 an error, 2 a path that
  cannot be read or a bad option.

examples:
  destination-operator lint manifests/ overlays/prod/extra.yaml
  kustomize build overlays/prod | destination-operator lint -q -
  destination-operator lint --strict --output junit manifests/ > lint.xml
"""
OUTPUTS = ("text", "json", "junit")
_CHART_FILES = ("Chart.yaml", "Chart.lock", "values.yaml", "values.yml")


def check_destination(doc: Mapping[Any, Any]) -> list[tuple[str, str]]:
    """(field, message) for every problem of one Destination object (metadata and spec) that
    the API server would refuse; no warnings."""
    return list(destination_problems(doc))


def _text(value: Any) -> str | None:
    """A name or namespace fit for one line (quoted and cut when it is not)."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= 253 and value.isprintable() else shown(value)


def _field(path: str) -> str:
    """A field path fit for one line: a key of the user's may be long or hold a newline."""
    return path if len(path) <= 256 and path.isprintable() else shown(path)


def _new_object(doc: Mapping[Any, Any], source: str, line: int, skipped: bool) -> ObjectResult:
    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    return ObjectResult(
        source,
        line,
        _text(api_version) or "",
        _text(kind) or "",
        _text(metadata.get("namespace")),
        _text(metadata.get("name")),
        skipped=skipped,
    )


def _lint_object(
    doc: Any, document: Document, source: str, report: Report, prefix: str, manifest: bool
) -> None:
    at = prefix.removesuffix(".")
    line, column = position(document.node, at) if at else position(document.node, "")
    if not isinstance(doc, Mapping):
        if report.strict and manifest:
            report.add(Finding(source, line, column, None, None, at, "not a Kubernetes object"))
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for number, item in enumerate(doc["items"]):
            _lint_object(item, document, source, report, f"{prefix}items[{number}].", manifest)
        return
    identity, found = identify(doc)
    if identity is Identity.NOT_AN_OBJECT:
        if report.strict and manifest:
            message = "not a Kubernetes object: no apiVersion or no kind"
            report.add(Finding(source, line, column, None, None, at, message))
        return
    obj = _new_object(doc, source, line, skipped=identity in (Identity.SECRET, Identity.OTHER))
    report.objects.append(obj)
    if identity is Identity.SECRET:
        found = list(secret_findings(doc))
    elif identity is Identity.DESTINATION:
        found = destination_findings(doc)
    placed = []
    for item in found:
        unknown = item.message.startswith("unknown field")
        where = prefix + item.field
        line, column = position(document.node, where, at_key=unknown)
        placed.append(
            Finding(
                source,
                line,
                column,
                obj.namespace,
                obj.name,
                _field(where),
                item.message,
                item.warning,
            )
        )
    for finding in sorted(placed, key=lambda f: f.line):  # in the file's order, stably
        report.add(finding, obj)


def lint_text(
    text: str, source: str, report: Report | None = None, *, manifest: bool = True
) -> Report:
    """Lint one file's text; findings are added to `report` (a new one by default).
    `manifest` False: a file that need not hold Kubernetes objects (a chart's values)."""
    report = report if report is not None else Report()
    report.sources.append(source)
    for document in documents(text):
        if isinstance(document, Malformed):
            report.documents += 1
            report.add(
                Finding(
                    source, document.line, document.column, None, None, "yaml", document.message
                )
            )
            return report
        if document.data is None:
            continue
        report.documents += 1
        _lint_object(document.data, document, source, report, "", manifest)
    return report


def _chart_templates(folder: Path) -> bool:
    """A Helm chart's `templates/`: Go templates, YAML only once rendered."""
    folder = folder.resolve()
    return folder.name == "templates" and (folder.parent / "Chart.yaml").is_file()


def _skip_notice(templates: Path) -> str:
    return (
        f"lint: skipping {templates} (Helm templates); lint a chart with: "
        f"helm template <release> {templates.parent} | destination-operator lint -"
    )


def _files(path: Path, skipped: list[Path]) -> Iterator[tuple[Path, bool]]:
    """(file, is a manifest) for the YAML files under `path`; a chart's `templates/` goes to
    `skipped`, and its Chart.yaml and values files are not manifests."""
    if path.is_dir():
        if _chart_templates(path):
            skipped.append(path)
            return
        for root, dirs, names in os.walk(path):
            chart = "Chart.yaml" in names
            if chart and "templates" in dirs:
                skipped.append(Path(root) / "templates")
            dirs[:] = sorted(
                d for d in dirs if not d.startswith(".") and not (chart and d == "templates")
            )
            for name in sorted(names):
                if name.endswith((".yaml", ".yml")):
                    yield Path(root) / name, not (chart and name in _CHART_FILES)
    else:
        yield path, True


def _read_stdin(stdin: TextIO) -> bytes | str:
    buffer = getattr(stdin, "buffer", None)
    return buffer.read() if buffer is not None else stdin.read()


def _decode(data: bytes | str) -> str | None:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _safe_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """lint's arguments, on its own parser or on `destination-operator`'s subcommand."""
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="YAML files or folders (searched for *.yaml and *.yml, skipping Helm chart "
        "templates); '-' or none: stdin",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print errors only: no warnings, no notices, no summary (the exit status is the "
        "same); an empty input is still said on stderr",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="text",
        help="text (one finding a line, the default), json, or junit (JUnit XML for CI)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="warnings are errors, and so are documents that are not Kubernetes objects and "
        "an empty input",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="print the counts (files, objects checked, valid, invalid, skipped, errors, "
        "warnings) on stdout, in the manner of kubeconform -summary",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="destination-operator lint",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def _sources(raw: str, notices: list[str]) -> tuple[list[tuple[str, bytes | str, bool]], bool]:
    """(source, data, is a manifest) for one PATH argument, and whether all could be read."""
    if raw == "-":
        return [(STDIN, _read_stdin(sys.stdin), True)], True
    path = Path(raw)
    if not path.exists():
        print(f"{raw}: no such file or folder", file=sys.stderr)
        return [], False
    found: list[tuple[str, bytes | str, bool]] = []
    readable = True
    skipped: list[Path] = []
    for file, manifest in _files(path, skipped):
        try:
            found.append((str(file), file.read_bytes(), manifest))
        except OSError as err:
            print(f"{file}: cannot read: {err.strerror or err}", file=sys.stderr)
            readable = False
    notices.extend(_skip_notice(templates) for templates in skipped)
    return found, readable


def _lint_path(raw: str, report: Report, notices: list[str]) -> tuple[bool, Finding | None]:
    """Lint one PATH argument: whether it could be read, and the finding if it was empty."""
    sources, readable = _sources(raw, notices)
    before = report.documents
    for source, data, manifest in sources:
        text = _decode(data)
        if text is None:
            report.sources.append(source)
            report.documents += 1
            report.add(Finding(source, 1, 1, None, None, "file", "not UTF-8 text"))
            continue
        lint_text(text, source, report, manifest=manifest)
    if not readable or report.documents > before:
        return readable, None
    name = STDIN if raw == "-" else raw
    what = "no YAML document" if sources else "no YAML file"
    empty = Finding(name, 0, 0, None, None, "", f"empty input: {what}", warning=True)
    report.add(empty)
    return readable, report.findings[-1]


def run(args: argparse.Namespace) -> int:
    """Lint `args.paths` (stdin when none); returns the exit status."""
    _safe_streams()
    quiet: bool = args.quiet
    output: str = getattr(args, "output", "text")
    report = Report(strict=getattr(args, "strict", False))
    notices: list[str] = []
    unreadable = False
    empty: list[Finding] = []
    for raw in args.paths or ["-"]:
        readable, finding = _lint_path(raw, report, notices)
        unreadable = unreadable or not readable
        if finding is not None:
            empty.append(finding)
    for notice in notices if not quiet else []:
        print(notice, file=sys.stderr)
    for finding in empty:  # said even under -q: an empty input is often a broken pipe
        if finding.warning:
            print(finding, file=sys.stderr)
    if output == "json":
        print(render_json(report))
    elif output == "junit":
        print(render_junit(report))
    else:
        for finding in report.findings:
            if not finding.warning:
                print(finding)
            elif not quiet and finding not in empty:
                print(finding, file=sys.stderr)
        if getattr(args, "summary", False):
            print(summary_line(report))
    if not quiet and not (output == "text" and getattr(args, "summary", False)):
        skipped = report.counts()["skipped"]
        print(
            f"lint: {report.destinations} Destination(s) in {len(report.sources)} file(s): "
            f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
            + (f", {skipped} object(s) of other kinds skipped" if skipped else ""),
            file=sys.stderr,
        )
    if unreadable:
        return 2
    return 1 if report.errors else 0


def main(argv: list[str]) -> int:
    """Run `destination-operator lint ARGV...`; returns the exit status."""
    try:
        args = _parser().parse_intermixed_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
