"""The files of manifests/samples/ and the `kubectl create secret` command each one shows.

A sample holds one Destination and nothing else; the Secret it reads is shown
in its header comment as a command to copy, so that applying the sample can
never overwrite a real Secret. The unit and cluster tests read that command
with `secret_command` and check it against the provider and a real API server.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "manifests" / "samples"
SAMPLES = sorted(FOLDER.glob("destinations.io_v1alpha1_destination_*.yaml"))

NAMESPACE_PLACEHOLDER = "<namespace>"
VALUE_PLACEHOLDER = "..."


@dataclass(frozen=True)
class SecretCommand:
    """`kubectl create secret generic NAME -n NAMESPACE --from-literal=K=V --from-file=K=PATH`."""

    name: str
    namespace: str
    literals: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> set[str]:
        """Every key the command puts in the Secret."""
        return set(self.literals) | set(self.files)

    def argv(self, namespace: str, literals: dict[str, str], files: dict[str, Path]) -> list[str]:
        """kubectl's arguments (without `kubectl`), with the namespace, values and files given.

        `literals` and `files` must name exactly the command's keys of each kind.
        """
        assert set(literals) == set(self.literals), (sorted(literals), sorted(self.literals))
        assert set(files) == set(self.files), (sorted(files), sorted(self.files))
        args = ["create", "secret", "generic", self.name, "-n", namespace]
        args += [f"--from-literal={key}={value}" for key, value in literals.items()]
        args += [f"--from-file={key}={path}" for key, path in files.items()]
        return args


def header(path: Path) -> list[str]:
    """The comment lines above the first YAML line, without their `#`."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def secret_commands(path: Path) -> list[str]:
    """Every `kubectl create secret` command in the header, continuation lines joined."""
    commands: list[str] = []
    current: list[str] | None = None
    for line in header(path):
        if current is None and line.startswith("kubectl create secret"):
            current = []
        if current is None:
            continue
        current.append(line.removesuffix("\\").strip())
        if not line.endswith("\\"):
            commands.append(" ".join(current))
            current = None
    if current is not None:
        commands.append(" ".join(current))  # a trailing `\` with nothing after it
    return commands


def parse_secret_command(command: str) -> SecretCommand:
    """The parts of one `kubectl create secret generic` command; ValueError on anything else."""
    args = shlex.split(command)
    if args[:4] != ["kubectl", "create", "secret", "generic"] or len(args) < 5:
        raise ValueError(f"not `kubectl create secret generic NAME ...`: {command!r}")
    name, rest = args[4], args[5:]
    namespace = ""
    literals: dict[str, str] = {}
    files: dict[str, str] = {}
    while rest:
        arg = rest.pop(0)
        if arg in ("-n", "--namespace") and rest:
            namespace = rest.pop(0)
        elif arg.startswith("--namespace="):
            namespace = arg.partition("=")[2]
        elif arg.startswith(("--from-literal=", "--from-file=")):
            option, _, pair = arg.partition("=")
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"{option} needs KEY=VALUE: {arg!r}")
            target = literals if option == "--from-literal" else files
            if key in literals or key in files:
                raise ValueError(f"key {key!r} given twice: {command!r}")
            target[key] = value
        else:
            raise ValueError(f"unexpected argument {arg!r} in {command!r}")
    return SecretCommand(name, namespace, literals, files)


def secret_command(path: Path) -> SecretCommand:
    """The one `kubectl create secret` command of a sample's header."""
    commands = secret_commands(path)
    assert len(commands) == 1, f"{path.name}: {len(commands)} kubectl create secret commands"
    return parse_secret_command(commands[0])
