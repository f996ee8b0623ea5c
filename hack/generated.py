"""A page generated from the project's sources: write it, or check that the committed copy
is what its sources make now (`make crds` writes, `make verify` and tests check)."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path


def main(
    tool: str,
    description: str,
    path: Path,
    label: str,
    make: Callable[[], str],
    argv: list[str] | None,
) -> int:
    """`write` or `check` the page at `path` (called `label` in messages) against `make()`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["write", "check"])
    args = parser.parse_args(argv)
    text = make()
    if args.command == "write":
        path.write_text(text, encoding="utf-8")
        print(f"{tool}: wrote {label}")
        return 0
    have = path.read_text(encoding="utf-8") if path.exists() else ""
    if have != text:
        sys.stderr.writelines(
            difflib.unified_diff(
                have.splitlines(keepends=True),
                text.splitlines(keepends=True),
                label,
                f"{label} (generated)",
            )
        )
        print(f"{tool}: {label} is stale: run 'make crds' and commit it", file=sys.stderr)
        return 1
    print(f"{tool}: {label} is fresh")
    return 0
