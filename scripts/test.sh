#!/usr/bin/env bash
# README's test command: install into .venv (with test extras) and run the whole test suite.
# Extra arguments go to pytest. PYTHON, VENV and CONSTRAINTS as in scripts/venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh opencv,test
venv="${VENV:-.venv}"
"$venv/bin/vermin" -t=3.8- --no-tips --violations --eval-annotations agent calibration
exec "$venv/bin/python" -m pytest "$@"
