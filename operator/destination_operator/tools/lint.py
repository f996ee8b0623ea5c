"""`destination-operator lint`: check Destination manifests offline, with the CRD's own rules.

    destination-operator lint manifests/ overlays/prod/extra.yaml
    kustomize build overlays/prod | destination-operator lint -
    helm template my-release charts/x | destination-operator lint -

Every `destinations.io/v1alpha1` `Destination` in the given files (folders are
searched for *.yaml and *.yml; `-` or no path reads stdin) is checked against
the API models, which carry the same rules as the CRD's schema and CEL
validations. Problems are printed one per line as

    FILE:DOCUMENT: FIELD: MESSAGE

where DOCUMENT is the 1-based index of the YAML document in the file. Other
documents are ignored, except that a Secret holding credential values in
`stringData` or `data` gets a warning on stderr (naming the keys, never the
values): credentials belong outside of Git. A folder's Helm charts (a
`Chart.yaml` beside `templates/`) are linted without their `templates/`, which
are Go templates, not YAML: a one-line notice on stderr names each one skipped
and how to lint the rendered chart. `-q` prints errors only: no warnings, no
notices, no summary. The exit status is 0 when there is no error, 1 when there
is one, 2 when a path cannot be read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from destination_operator.api import API_VERSION, GROUP, KIND
from destination_operator.api.rules import matches
from destination_operator.api.spec import spec_problems
from destination_operator.providers.registry import credential_keys

__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "Problem",
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
output:
  errors on stdout, one a line: FILE:DOCUMENT: FIELD: MESSAGE (DOCUMENT counts
  YAML documents from 1); warnings (Secrets with credential values), notices
  and a summary on stderr. Documents other than Destinations, Lists of them and
  Secrets are ignored.

Helm charts:
  in a folder, a chart's templates/ (a Chart.yaml beside it) is skipped with a
  notice: Go templates are not YAML until rendered. Lint a chart with:
    helm template <release> charts/x | destination-operator lint -

exit status:
  0 no error (warnings allowed), 1 an error, 2 a path that cannot be read or a
  bad option.

examples:
  destination-operator lint manifests/ overlays/prod/extra.yaml
  kustomize build overlays/prod | destination-operator lint -q -
"""
_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


@dataclass(frozen=True)
class Problem:
    """One finding: `source:document: field: message`."""

    source: str
    document: int
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.source}:{self.document}:"
        if self.warning:
            return f"{where} warning: {self.field}: {self.message}"
        return f"{where} {self.field}: {self.message}"


@dataclass
class Report:
    """Everything found in one run."""

    problems: list[Problem] = field(default_factory=list)
    destinations: int = 0
    sources: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]


def _json_key(key: Any) -> Any:
    """A mapping key as YAML-to-JSON conversion (sigs.k8s.io/yaml) turns it into a string."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    return key


class _Loader(yaml.SafeLoader):
    """YAML as kubectl and the API server read it: timestamps stay strings, keys become
    strings, duplicate keys are an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = _json_key(self.construct_object(key_node, deep=True))
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found a key that is a list or a mapping",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {str(key)[:100]!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _json_key(self.construct_object(key_node, deep=True))
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found a key that is a list or a mapping",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Malformed:
    def __init__(self, message: str) -> None:
        self.message = message


def _yaml_error(err: BaseException) -> str:
    if isinstance(err, RecursionError):
        return "malformed YAML: nested too deeply"
    if isinstance(err, yaml.MarkedYAMLError):
        problem = err.problem or err.context or "invalid YAML"
        mark = err.problem_mark or err.context_mark
        if mark is not None:
            return f"malformed YAML: {problem} (line {mark.line + 1}, column {mark.column + 1})"
        return f"malformed YAML: {problem}"
    return f"malformed YAML: {str(err).splitlines()[0] if str(err) else type(err).__name__}"


def _documents(text: str) -> Iterator[tuple[int, Any]]:
    """(index, document) pairs; a parse error ends the stream with a `_Malformed`."""
    loader = _Loader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_data():  # type: ignore[no-untyped-call]
                    return
                data = loader.get_data()
            except (yaml.YAMLError, RecursionError) as err:
                yield index + 1, _Malformed(_yaml_error(err))
                return
            index += 1
            yield index, data
    finally:
        loader.dispose()


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


def _check_destination(doc: Mapping[Any, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key in doc:
        if key not in _TOP_LEVEL:
            path = f"{prefix}{key}"
            yield path, f'unknown field "{path}"'
    for where, message in _check_metadata(doc.get("metadata")):
        yield prefix + where, message
    for problem in spec_problems(doc.get("spec"), root=f"{prefix}spec"):
        yield problem.field, problem.message


def check_destination(doc: Mapping[Any, Any]) -> list[tuple[str, str]]:
    """(field, message) for every problem of one Destination object (metadata and spec)."""
    return list(_check_destination(doc, ""))


def _secret_warning(doc: Mapping[Any, Any]) -> Iterator[tuple[str, str]]:
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    label = f"Secret {name}" if isinstance(name, str) and len(name) <= 253 else "this Secret"
    for section in ("stringData", "data"):
        values = doc.get(section)
        if not isinstance(values, Mapping):
            continue
        keys = sorted(str(k) for k, v in values.items() if k in credential_keys() and v)
        if keys:
            yield (
                section,
                f"{label} holds credential values in cleartext ({', '.join(keys)}); keep real "
                "credentials out of manifests: create the Secret out of band, or use External "
                "Secrets, Sealed Secrets or SOPS",
            )


def _is_destination(doc: Mapping[Any, Any]) -> bool | None:
    """True: check it; None: a Destination of an API version we do not serve; False: ignore."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind != KIND:
        return False
    if api_version == API_VERSION:
        return True
    if api_version is None or (isinstance(api_version, str) and api_version.startswith(GROUP)):
        return None
    return False


def _lint_object(doc: Any, source: str, index: int, report: Report, prefix: str = "") -> None:
    if not isinstance(doc, Mapping):
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for position, item in enumerate(doc["items"]):
            _lint_object(item, source, index, report, prefix=f"{prefix}items[{position}].")
        return
    if kind == "Secret" and doc.get("apiVersion") == "v1":
        for where, message in _secret_warning(doc):
            report.problems.append(Problem(source, index, prefix + where, message, warning=True))
        return
    verdict = _is_destination(doc)
    if verdict is False:
        return
    report.destinations += 1
    if verdict is None:
        report.problems.append(
            Problem(
                source,
                index,
                f"{prefix}apiVersion",
                f"Destination must use apiVersion {API_VERSION} (the only version served)",
            )
        )
        return
    for where, message in _check_destination(doc, prefix):
        report.problems.append(Problem(source, index, where, message))


def lint_text(text: str, source: str, report: Report | None = None) -> Report:
    """Lint one file's text; problems are added to `report` (a new one by default)."""
    report = report if report is not None else Report()
    report.sources += 1
    for index, doc in _documents(text):
        if isinstance(doc, _Malformed):
            report.problems.append(Problem(source, index, "yaml", doc.message))
            return report
        _lint_object(doc, source, index, report)
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


def _files(path: Path, skipped: list[Path]) -> Iterator[Path]:
    """The YAML files to read under `path`; a chart's `templates/` goes to `skipped`."""
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
                    yield Path(root) / name
    else:
        yield path


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
        help="print errors only: no warnings, no notices, no summary (the exit status is the same)",
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


def run(args: argparse.Namespace) -> int:
    """Lint `args.paths` (stdin when none); returns the exit status."""
    _safe_streams()
    quiet: bool = args.quiet

    def notice(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr)

    report = Report()
    unreadable = False
    for raw in args.paths or ["-"]:
        if raw == "-":
            sources: list[tuple[str, bytes | str | None]] = [(STDIN, _read_stdin(sys.stdin))]
        else:
            path = Path(raw)
            if not path.exists():
                print(f"{raw}: no such file or folder", file=sys.stderr)
                unreadable = True
                continue
            sources = []
            skipped: list[Path] = []
            for file in _files(path, skipped):
                try:
                    sources.append((str(file), file.read_bytes()))
                except OSError as err:
                    print(f"{file}: cannot read: {err.strerror or err}", file=sys.stderr)
                    unreadable = True
            for templates in skipped:
                notice(_skip_notice(templates))
        for source, data in sources:
            text = _decode(data) if data is not None else None
            if text is None:
                report.sources += 1
                report.problems.append(Problem(source, 1, "file", "not UTF-8 text"))
                continue
            lint_text(text, source, report)
    for problem in report.problems:
        if not problem.warning:
            print(problem)
        else:
            notice(str(problem))
    errors, warnings = len(report.errors), len(report.warnings)
    notice(
        f"lint: {report.destinations} Destination(s) in {report.sources} file(s): "
        f"{errors} error(s), {warnings} warning(s)"
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
