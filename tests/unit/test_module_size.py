"""No module of the operator is over 600 lines: past that, a module holds more than one job.

DEVELOPMENT.md's module map gives each module its one job; a module that
grows past this bound is split along its jobs, not let grow.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "destination_operator"
LIMIT = 600


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 30  # the package was found, with its modules
    too_long = {name: lines for name, lines in sizes.items() if lines > LIMIT}
    assert not too_long, f"split these along their jobs: {too_long}"
