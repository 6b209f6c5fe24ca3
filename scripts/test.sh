#!/usr/bin/env bash
# README's test command: install into .venv (with test extras), check Python 3.8 compatibility
# (vermin), format, lint and types (ruff, mypy; Python 3.10+ only), and run the whole test suite.
# Extra arguments go to pytest. PYTHON, VENV and CONSTRAINTS as in scripts/venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh opencv,test
venv="${VENV:-.venv}"
"$venv/bin/vermin" -t=3.8- --no-tips --violations --eval-annotations agent calibration
if [ -x "$venv/bin/ruff" ] && [ -x "$venv/bin/mypy" ]; then
  "$venv/bin/ruff" format --check --quiet .
  "$venv/bin/ruff" check --quiet .
  "$venv/bin/mypy"
else
  echo "ruff and mypy: skipped under $("$venv/bin/python" --version) (they run under Python 3.10 or newer)"
fi
exec "$venv/bin/python" -m pytest "$@"
