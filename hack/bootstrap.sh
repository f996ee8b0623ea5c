#!/usr/bin/env bash
# Creates the virtualenv and installs the operator with its test tools, pinned
# in pyproject.toml. Says what to do when a prerequisite is missing.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
die() { echo "bootstrap: error: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || die "$python not found; install Python 3.11 or newer"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "Python 3.11 or newer is needed; $("$python" --version) found"
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  # Debian splits venv out of the interpreter package.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    die "the venv module is missing; install python3-venv (Debian: sudo apt-get install python3-venv)"
  fi
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# renovate: datasource=pypi depName=pip
"$venv/bin/python" -m pip install -q --upgrade pip==25.3
"$venv/bin/python" -m pip install -q -e '.[dev]'
echo "bootstrap: $venv is ready"
