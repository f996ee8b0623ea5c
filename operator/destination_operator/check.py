"""`destination-operator check`: the real probe of one Destination manifest, with no cluster.

    destination-operator check -f destination.yaml --secret-file secret.yaml
    kubectl get secret creds -o yaml | destination-operator check -f dest.yaml --secret-file -
    destination-operator check -f destination.yaml --from-env

The spec is parsed with `api.spec.parse_spec` and probed with
`probe.verify.verify`, the probe object's key made by
`probe.verify.probe_object_key`: the code the operator runs, so the reason,
message and steps printed are those the operator would write in the
Verified condition and `status.lastProbe`. The endpoint guard is applied as
the operator applies it: loopback and private addresses are refused unless
`--allow-private-endpoints` is given (the operator's environment variable for
it is not read here).

Credentials come from a Secret manifest (`data` base64, `stringData` as text;
`stringData` wins, as in the API server), whose name must be the spec's
`credentials.secretRef.name`, or from environment variables, one per key the
type reads: `DESTINATION_SECRET_` and the key in upper snake case
(`accessKeyId` -> `DESTINATION_SECRET_ACCESS_KEY_ID`). There is no flag for
a value on the command line: it would stay in shell history and in `ps`.

Exit status: 0 verified, 1 not verified (the reason says why), 2 unusable
input (an unreadable file, not a Destination, no credentials source, a
Secret of another name). No message printed holds a value of the Secret:
the probe's messages are scrubbed, and the errors of the input name files,
lines and keys only.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import yaml

from .api import API_VERSION, KIND
from .api.spec import DestinationType, SpecError, parse_spec
from .api.status import Reason, rfc3339
from .conditions import EXPIRY_WINDOW, expiring
from .outcome import Outcome, invalid_spec
from .probe import verify
from .providers.registry import ProviderNotFoundError, default_registry
from .providers.transport import CA_BUNDLE_KEY

__all__ = [
    "ENV_PREFIX",
    "UsageError",
    "add_arguments",
    "add_parser",
    "env_name",
    "keys_read",
    "main",
]

ENV_PREFIX = "DESTINATION_SECRET_"
"""`--from-env` reads key `accessKeyId` from `DESTINATION_SECRET_ACCESS_KEY_ID`."""

MAX_FILE_BYTES = 4 * 1024 * 1024
"""A manifest read is cut off here (a Secret holds at most 1 MiB, base64 adds a third)."""

WORKLOAD_IDENTITY = "check cannot use workload identity yet: give the Destination a secretRef"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class UsageError(Exception):
    """Input `check` cannot use: exit status 2. The message names no Secret value."""


def env_name(key: str) -> str:
    """The environment variable `--from-env` reads `key` from."""
    return ENV_PREFIX + _CAMEL.sub("_", key).upper()


def keys_read(kind: DestinationType | str) -> tuple[str, ...]:
    """The Secret keys a Destination of type `kind` reads, in the provider's order, then
    `caBundle`, which every type reads."""
    keys = default_registry().get(kind).secret_keys
    names = [*keys.required, *keys.optional, *(k for group in keys.alternatives for k in group)]
    return tuple(dict.fromkeys([*names, CA_BUNDLE_KEY]))


def _env_table() -> str:
    """The variables `--from-env` reads, by type (types that read the same keys together)."""
    by_keys: dict[tuple[str, ...], list[str]] = {}
    for kind in default_registry().types():
        by_keys.setdefault(keys_read(kind), []).append(kind.value)
    lines = []
    for keys, kinds in by_keys.items():
        lines.append(f"  {', '.join(kinds)}:")
        lines.append("      " + " ".join(env_name(key)[len(ENV_PREFIX) :] for key in keys))
    return "\n".join(lines)


DESCRIPTION = """\
Run the real probe of one Destination, as the operator would, with no cluster: its
spec is checked by the operator's rules, the endpoint guard is applied, then the
probe object is written (and deleted in WriteDelete mode). Prints the Verified
condition's reason and message and each step of the probe.
"""


def _epilog() -> str:
    return f"""\
credentials (one source is required):
  --secret-file FILE  a Secret manifest (data in base64, stringData as text) named as
                      the Destination's spec.credentials.secretRef.name; - is stdin
  --from-env          each key from {ENV_PREFIX} + the key in upper snake case
                      (accessKeyId: {env_name("accessKeyId")}); by type:
{_env_table()}
  No flag takes a value on the command line: it would stay in shell history and ps.

exit status: 0 verified, 1 not verified, 2 unusable input.

examples:
  destination-operator check -f destination.yaml --secret-file secret.yaml
  kubectl get secret creds -o yaml | destination-operator check -f dest.yaml --secret-file -
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`check`'s arguments, on its own parser or on the `check` sub-parser."""
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        metavar="FILE",
        help="the Destination manifest (one Destination; - reads stdin)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--secret-file",
        metavar="FILE",
        help="the Secret manifest the Destination names (- reads stdin)",
    )
    source.add_argument(
        "--from-env",
        action="store_true",
        help=f"read each key the type needs from {ENV_PREFIX}<KEY> (see below)",
    )
    parser.add_argument(
        "--allow-private-endpoints",
        action="store_true",
        help="let the endpoint guard pass loopback and private addresses (refused by default)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default) or json",
    )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The `check` sub-parser on the top-level command's sub-parsers `sub`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="run one Destination's real probe with no cluster (-f FILE)",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="destination-operator check",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


# --- the input ---------------------------------------------------------------------------------


def _read(path: str, what: str, stdin: TextIO) -> str:
    """A file's text (`-`: stdin), at most `MAX_FILE_BYTES`."""
    try:
        if path == "-":
            text = stdin.read(MAX_FILE_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(MAX_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "not UTF-8 text"
        raise UsageError(f"cannot read the {what} {_shown(path)}: {reason}") from None
    if len(text) > MAX_FILE_BYTES:
        raise UsageError(f"the {what} {_shown(path)} is larger than {MAX_FILE_BYTES} bytes")
    return text


def _shown(path: str) -> str:
    return "on stdin" if path == "-" else repr(path)


def _documents(text: str, what: str, path: str) -> list[Mapping[str, Any]]:
    """The YAML documents that are objects. A YAML error says where, never what it read."""
    try:
        found = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"the {what} {_shown(path)} is not valid YAML{where}") from None
    return [doc for doc in found if isinstance(doc, Mapping)]


def _one(docs: list[Mapping[str, Any]], api_version: str, kind: str, what: str, path: str) -> Any:
    """The one object of `kind` among `docs`; other kinds are passed over."""
    same_kind = [doc for doc in docs if doc.get("kind") == kind]
    matching = [doc for doc in same_kind if doc.get("apiVersion") == api_version]
    if not matching:
        if same_kind:
            raise UsageError(
                f"the {what} {_shown(path)} holds a {kind} of apiVersion "
                f"{str(same_kind[0].get('apiVersion'))!r}, not {api_version}"
            )
        raise UsageError(f"the {what} {_shown(path)} holds no {kind} ({api_version})")
    if len(matching) > 1:
        raise UsageError(f"the {what} {_shown(path)} holds {len(matching)} {kind}s: give one")
    return matching[0]


def _metadata(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _secret_data(secret: Mapping[str, Any], path: str) -> dict[str, bytes]:
    """The Secret's data as the API server would store it: `data` decoded from base64, then
    `stringData` over it."""
    data: dict[str, bytes] = {}
    for field in ("data", "stringData"):
        values = secret.get(field)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise UsageError(f"the Secret {_shown(path)}: {field} is not a map of keys")
        for key, value in values.items():
            if not isinstance(value, str):
                raise UsageError(f"the Secret {_shown(path)}: {field}.{key} is not a string")
            if field == "stringData":
                data[str(key)] = value.encode("utf-8")
                continue
            try:
                data[str(key)] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise UsageError(
                    f"the Secret {_shown(path)}: data.{key} is not base64 "
                    "(put text under stringData)"
                ) from None
    return data


def _from_env(kind: DestinationType, environ: Mapping[str, str]) -> dict[str, bytes]:
    """The keys of type `kind` that are set in `environ`, by their Secret key names."""
    keys = keys_read(kind)
    data = {key: os.fsencode(environ[env_name(key)]) for key in keys if env_name(key) in environ}
    if not data:
        names = ", ".join(env_name(key) for key in keys)
        raise UsageError(f"--from-env: none of {names} is set")
    return data


# --- the probe and its report ------------------------------------------------------------------


def _report(outcome: Outcome, name: str, kind: str) -> dict[str, Any]:
    return {
        "destination": name,
        "type": kind,
        "verified": outcome.verified,
        "condition": {
            "type": "Verified",
            "status": "True" if outcome.verified else "False",
            "reason": outcome.reason.value,
            "message": outcome.message,
        },
        "lastProbe": outcome.last_probe(),
        "credentialsExpiry": rfc3339(outcome.expiry.at) if outcome.expiry else None,
        "credentialsExpiring": _expiring(outcome),
    }


def _expiring(outcome: Outcome) -> dict[str, str] | None:
    """The CredentialsExpiring condition the operator would write (its default window),
    None when no expiry can be read."""
    if outcome.expiry is None:
        return None
    now = outcome.time or datetime.datetime.now(datetime.UTC)
    status, reason, message = expiring(outcome.expiry, now, EXPIRY_WINDOW)
    return {
        "type": "CredentialsExpiring",
        "status": status,
        "reason": reason.value,
        "message": message,
    }


PRIVATE_HINT = (
    "note: --allow-private-endpoints lets the guard pass loopback and private addresses "
    "(cloud metadata addresses are always refused)"
)


def _text(report: Mapping[str, Any], *, hint: bool) -> str:
    condition = report["condition"]
    lines = [
        f"Destination {report['destination']} ({report['type']}): "
        f"Verified={condition['status']} reason={condition['reason']}",
        f"message: {condition['message']}",
    ]
    expiring_ = report["credentialsExpiring"]
    if expiring_ is not None:
        lines.append(
            f"CredentialsExpiring={expiring_['status']} reason={expiring_['reason']}: "
            f"{expiring_['message']}"
        )
    probe = report["lastProbe"]
    if probe is not None:
        lines.append(
            f"probe: {probe.get('mode', '')} {probe['objectKey']!r} "
            f"in {probe['durationMilliseconds']}ms"
        )
        for step in probe["steps"]:
            line = f"  {step['name']}: {step['outcome']} in {step['durationMilliseconds']}ms"
            if step.get("message"):
                line += f": {step['message']}"
            lines.append(line)
    if hint:
        lines.append(PRIVATE_HINT)
    return "\n".join(lines) + "\n"


def check(args: argparse.Namespace, stdin: TextIO, environ: Mapping[str, str]) -> Outcome:
    """Read the input `args` name and probe; raises `UsageError` for input it cannot use.
    Returns the outcome with `args.destination` and `args.kind` set for the report."""
    if args.filename == "-" and args.secret_file == "-":
        raise UsageError("the Destination and the Secret cannot both be read from stdin")
    docs = _documents(_read(args.filename, "Destination file", stdin), "file", args.filename)
    destination = _one(docs, API_VERSION, KIND, "file", args.filename)
    meta = _metadata(destination)
    raw_spec = destination.get("spec")
    args.destination = str(meta.get("name") or "(unnamed)")
    args.kind = str(raw_spec.get("type")) if isinstance(raw_spec, Mapping) else "?"
    credentials = raw_spec.get("credentials") if isinstance(raw_spec, Mapping) else None
    if (
        isinstance(credentials, Mapping)
        and ("serviceAccountName" in credentials or "operatorIdentity" in credentials)
        and "secretRef" not in credentials
    ):
        raise UsageError(WORKLOAD_IDENTITY)

    secret: Mapping[str, Any] | None = None
    if args.secret_file is not None:
        text = _read(args.secret_file, "Secret file", stdin)
        secret = _one(
            _documents(text, "file", args.secret_file), "v1", "Secret", "file", args.secret_file
        )

    try:
        spec = parse_spec(raw_spec if isinstance(raw_spec, Mapping) else None)
    except SpecError as err:
        return invalid_spec(err.field, err.message)

    if secret is not None:
        assert args.secret_file is not None
        wanted = spec.secret_name
        secret_meta = _metadata(secret)
        if secret_meta.get("name") != wanted:
            raise UsageError(
                f"the Secret in {_shown(args.secret_file)} is named "
                f"{str(secret_meta.get('name') or '')!r}, but the Destination's "
                f"spec.credentials.secretRef.name is {wanted!r}"
            )
        namespaces = (meta.get("namespace"), secret_meta.get("namespace"))
        if all(namespaces) and namespaces[0] != namespaces[1]:
            raise UsageError(
                f"the Secret is in namespace {namespaces[1]!r} and the Destination in "
                f"{namespaces[0]!r}: the operator reads Secrets in the Destination's own"
            )
        data = _secret_data(secret, args.secret_file)
        secret_uid = str(secret_meta.get("uid") or "")
    else:
        try:
            data = _from_env(spec.type, environ)
        except ProviderNotFoundError:
            data = {}
        secret_uid = ""

    now = datetime.datetime.now(datetime.UTC)
    # The operator's token is the Destination's uid; a manifest not yet applied has none, and
    # its name keeps repeated checks on one probe object.
    token = str(meta.get("uid") or f"check-{args.destination}")
    return verify.verify(
        spec,
        data,
        secret_uid=secret_uid,
        object_key=verify.probe_object_key(spec, token, now),
        allow_private=args.allow_private_endpoints,
        now=now,
    )


def main(
    argv: list[str],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run `destination-operator check ARGV...`; returns the exit status (0, 1 or 2)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0), or a usage error argparse printed (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        outcome = check(args, stdin, os.environ if environ is None else environ)
    except UsageError as err:
        print(f"destination-operator check: {err}", file=stderr)
        return 2
    report = _report(outcome, args.destination, args.kind)
    if args.output == "json":
        stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        blocked = outcome.reason is Reason.EndpointBlocked
        stdout.write(_text(report, hint=blocked and not args.allow_private_endpoints))
    stdout.flush()
    return 0 if outcome.verified else 1
